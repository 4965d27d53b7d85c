"""Migrations: programmatic upgrade / downgrade round trips on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
    assert migrate.status(engine) == {"current": None, "head": "0004", "pending": ["0001", "0002", "0003", "0004"]}
    migrate.upgrade(engine, "0001")
    assert {"events", "sessions", "audit_log"} <= _tables(engine) and "rollups" not in _tables(engine)
    migrate.upgrade(engine)
    assert migrate.status(engine) == {"current": "0004", "head": "0004", "pending": []}
    assert "rollups" in _tables(engine)


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
