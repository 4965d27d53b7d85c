"""Migrations: programmatic upgrade / downgrade round trips on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import ev
from sqlalchemy import Engine, create_engine, inspect

from vibekit_telemetry.query import QueryFilter, StatsFilter
from vibekit_telemetry.store import migrate
from vibekit_telemetry.store.sql import SQLStore


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each SQL backend."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'm.db'}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """A plain engine on the test database."""
    eng = create_engine(url)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_head_constant_matches_the_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrate.SCRIPT_LOCATION))
    script = ScriptDirectory.from_config(config)
    assert script.get_current_head() == migrate.head_version()
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == list(migrate.REVISIONS)


def test_upgrade_step_by_step_and_status(engine: Engine) -> None:
    assert migrate.current_version(engine) is None
    head = migrate.HEAD
    assert migrate.status(engine) == {"current": None, "head": head, "pending": list(migrate.REVISIONS),
                                      "newer": False}
    migrate.upgrade(engine, "0001")
    assert {"events", "sessions", "audit_log"} <= _tables(engine) and "rollups" not in _tables(engine)
    migrate.upgrade(engine)
    assert migrate.status(engine) == {"current": head, "head": head, "pending": [], "newer": False}
    assert "rollups" in _tables(engine)


def test_a_database_a_newer_release_wrote_is_refused_by_name_never_crashing_the_host(
        url: str, engine: Engine) -> None:
    from vibekit_telemetry import Telemetry
    from vibekit_telemetry.errors import StoreError

    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    assert migrate.status(engine) == {"current": "0999", "head": migrate.HEAD, "pending": [], "newer": True}
    for attempt in (lambda: migrate.upgrade(engine), lambda: migrate.downgrade(engine, "0001")):
        with pytest.raises(StoreError, match=r"0999.*newer release.*Upgrade vibekit-telemetry"):
            attempt()
    options = {"url": url} if url.startswith("postgresql") else {"path": url.removeprefix("sqlite:///")}
    storage = [{"type": "postgresql" if url.startswith("postgresql") else "sqlite", "options": options}]
    telemetry = Telemetry(storage=storage)  # the default mode: recorded in health, the host goes on
    try:
        assert telemetry.track_start("claude", "code", "p") and not telemetry.flush(5)
        assert "newer release" in str(telemetry.get_health_status())
    finally:
        telemetry.shutdown()
    with pytest.raises(StoreError, match="newer release"):
        Telemetry(storage=storage, raise_on_error=True)
    assert migrate.current_version(engine) == "0999"  # nothing was changed


def test_tables_of_another_application_are_refused_by_name(url: str, engine: Engine) -> None:
    from vibekit_telemetry.errors import StoreError

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
    store = SQLStore(url)
    with pytest.raises(StoreError, match="tables vibekit-telemetry did not create"):
        store.initialize()
    assert _tables(engine) == {"events"}  # nothing of ours was left behind


def test_downgrade_to_0002_drops_text_search_and_store_falls_back(url: str, engine: Engine) -> None:
    store = SQLStore(url)
    store.store_batch([ev("start", label="needle in a haystack"), ev("stream", at=1, stream_data="hay")])
    store.shutdown()
    migrate.downgrade(engine, "0002")
    assert migrate.current_version(engine) == "0002"
    names = _tables(engine) | {i["name"] for i in inspect(engine).get_indexes("events")}
    assert "events_fts" not in names and "ix_events_label_trgm" not in names
    # Opening the store upgrades again and rebuilds the index over the existing rows.
    store = SQLStore(url)
    assert [e.event_type for e in store.query(QueryFilter(contains="edle"))] == ["start"]
    store.shutdown()


def test_downgrade_to_base_then_upgrade_leaves_a_working_store(url: str, engine: Engine) -> None:
    store = SQLStore(url)
    store.store_batch([ev("start")])
    store.shutdown()
    migrate.downgrade(engine, "base")
    assert migrate.current_version(engine) is None
    assert not {"events", "sessions", "rollups", "audit_log"} & _tables(engine)
    migrate.upgrade(engine)
    store = SQLStore(url)
    assert store.query(QueryFilter()) == []
    assert store.store_batch([ev("start"), ev("end", at=5)]).stored == 2
    assert store.get_stats(StatsFilter()).total_events == 2
    store.shutdown()


def test_upgrade_from_0001_backfills_rollups(url: str, engine: Engine) -> None:
    store = SQLStore(url)
    store.store_batch([ev("start"), ev("stream", at=1), ev("error", at=2)])
    store.shutdown()
    migrate.downgrade(engine, "0001")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        total = conn.exec_driver_sql(
            "SELECT SUM(count), SUM(error_count) FROM rollups WHERE period = 'hour'").one()
    assert tuple(total) == (3, 1)


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    path = tmp_path / "fast.db"
    SQLStore(path).initialize()
    code = (f"import sys; from vibekit_telemetry.store.sql import SQLStore; s = SQLStore({str(path)!r}); "
            "s.initialize(); assert 'alembic' not in sys.modules, 'alembic imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_legacy_view_keeps_seed_003_sql_working(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    store.store_batch([ev("start", action="code", label="p", event_id="e1"),
                       ev("stream", at=1, stream_data="chunk", event_id="e2")])
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT agentType, COUNT(*), MAX(streamData) FROM telemetry GROUP BY agentType").fetchall()
        assert [tuple(r) for r in rows] == [("claude", 2, "chunk")]
    migrate.downgrade(store.engine, "0003")
    assert "telemetry" not in set(inspect(store.engine).get_view_names())
    store.shutdown()


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything that makes up the schema, comparable between two databases."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"))
                        for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table),
            "fks": insp.get_foreign_keys(table),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(table)),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
        }
    out["views"] = {v: insp.get_view_definition(v) for v in insp.get_view_names()}
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            out["master"] = sorted(tuple(r) for r in conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"))
        else:
            out["pg_indexes"] = sorted(tuple(r) for r in conn.exec_driver_sql(
                "SELECT tablename, indexname, regexp_replace(indexdef, 'vk_test_[0-9a-f]+\\.', '') "
                "FROM pg_indexes WHERE schemaname = current_schema()"))
        out["version"] = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
        out["store_meta"] = sorted(tuple(r) for r in conn.exec_driver_sql("SELECT key, value FROM store_meta"))
    return out


def test_fresh_database_created_at_head_equals_one_upgraded_from_0001(
        url: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    fresh = create_engine(url)
    migrate.upgrade(fresh)  # empty: created from schema.py metadata at the head, no migration replay
    assert migrate.current_version(fresh) == migrate.HEAD
    created = _schema(fresh)
    fresh.dispose()
    other_url = (request.getfixturevalue("pg_url") if url.startswith("postgresql")
                 else f"sqlite:///{tmp_path / 'replayed.db'}")
    replayed = create_engine(other_url)
    migrate.upgrade(replayed, "0001")
    migrate.upgrade(replayed)  # 0002 .. head through Alembic
    upgraded = _schema(replayed)
    replayed.dispose()
    assert created == upgraded


def test_creating_a_fresh_database_does_not_import_alembic(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    code = (f"import sys; from vibekit_telemetry.store.sql import SQLStore; s = SQLStore({str(path)!r}); "
            "s.initialize(); "
            "assert 'alembic' not in sys.modules, 'alembic imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert migrate.current_version(create_engine(f"sqlite:///{path}")) == migrate.HEAD


def test_upgrade_to_0006_backfills_day_rollups_and_totals(url: str, engine: Engine) -> None:
    store = SQLStore(url)
    store.store_batch([ev("start", "a"), ev("stream", "a", at=1), ev("error", "a", at=2),
                       ev("end", "a", at=90), ev("start", "b", "codex", at=86_400_000)])
    expected = store.get_stats(StatsFilter(group_by="category"))
    expected.database_size_bytes = None
    store.shutdown()
    migrate.downgrade(engine, "0005")
    assert "session_totals" not in _tables(engine)
    migrate.upgrade(engine)
    store = SQLStore(url)
    got = store.get_stats(StatsFilter(group_by="category"))
    got.database_size_bytes = None
    assert got == expected and got.total_sessions == 2 and got.avg_session_duration_ms == 90.0
    with store.engine.connect() as conn:
        days = conn.exec_driver_sql("SELECT COUNT(*), SUM(count) FROM rollups WHERE period = 'day'").one()
    assert tuple(days) == (5, 5)  # claude's start/stream/error/end on day 1, codex's start on day 2
    store.shutdown()


def test_upgrade_to_0008_backfills_session_rollups(url: str, engine: Engine) -> None:
    day, hour = 86_400_000, 3_600_000
    store = SQLStore(url)
    store.store_batch([ev("stream", "a", at=day + 60_000), ev("start", "b", "codex", at=2 * hour),
                       ev("end", "b", at=3 * hour, duration=4.0), ev("start", "c", at=2 * day)])
    store.store_batch([ev("start", "a", "gemini", at=day - 60_000)])  # a late start moves a back a day
    window = StatsFilter(since=ev("start").timestamp - hour // 2, until=ev("start").timestamp + 2 * day + 1,
                         group_by="category")
    expected = store.get_stats(window)
    expected.database_size_bytes = None
    rows_sql = "SELECT * FROM session_rollups WHERE sessions <> 0 ORDER BY period, bucket_start, category"
    with store.engine.connect() as conn:
        maintained = [tuple(r) for r in conn.exec_driver_sql(rows_sql)]
    store.shutdown()
    migrate.downgrade(engine, "0007")
    assert "session_rollups" not in _tables(engine)
    migrate.upgrade(engine)
    store = SQLStore(url)
    got = store.get_stats(window)
    got.database_size_bytes = None
    with store.engine.connect() as conn:
        backfilled = [tuple(r) for r in conn.exec_driver_sql(rows_sql)]
    assert backfilled == maintained and len(backfilled) == 6  # 3 sessions x (hour, day)
    assert got == expected and got.total_sessions == 3 and got.avg_session_duration_ms == 4.0
    store.shutdown()
