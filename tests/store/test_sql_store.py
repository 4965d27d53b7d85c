"""SQL-only behaviour: rollups, corrupt files, failed batches, pruning, maintenance, audit."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import T0, ev, locked_by_another

from vibekit_telemetry.errors import StoreError, TransientStoreError
from vibekit_telemetry.query import QueryFilter, StatsFilter
from vibekit_telemetry.store.sql import SQLStore


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQL backends only."""
    return str(request.param)


def _rollups(store: SQLStore, period: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT bucket_start, category, action, event_type, count, error_count, duration_sum, "
            f"duration_count, duration_min, duration_max FROM rollups WHERE period = '{period}' "
            "ORDER BY bucket_start, category, action, event_type")]


def test_rollups_are_upserted_per_batch(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    store.store_batch([ev("start", action="chat"), ev("stream", at=1, duration=4.0),
                       ev("stream", at=61_000, duration=2.0)])
    store.store_batch([ev("stream", at=2, duration=10.0), ev("error", at=3)])
    assert _rollups(store, "minute") == [
        (T0 - T0 % 60_000, "claude", "", "error", 1, 1, 0.0, 0, None, None),
        (T0 - T0 % 60_000, "claude", "", "stream", 2, 0, 14.0, 2, 4.0, 10.0),
        (T0 - T0 % 60_000, "claude", "chat", "start", 1, 0, 0.0, 0, None, None),
        (T0 - T0 % 60_000 + 60_000, "claude", "", "stream", 1, 0, 2.0, 1, 2.0, 2.0),
    ]
    hour = _rollups(store, "hour")
    assert sum(r[4] for r in hour) == 5
    assert next(r for r in hour if r[3] == "stream")[4:10] == (3, 0, 16.0, 3, 2.0, 10.0)
    # clean corrects counts and drops emptied buckets
    store.clean(older_than_ms=T0 + 60_000)
    assert [(r[3], r[4]) for r in _rollups(store, "hour")] == [("stream", 1)]
    assert store.get_stats(StatsFilter()).total_events == 1


def test_stats_and_health_report_the_size_of_the_database_from_the_first_call(
        make_store: Callable[..., SQLStore]) -> None:
    # PostgreSQL reuses a size reading for a few seconds (Dialect.size_max_age_s): never a made-up one.
    store = make_store()
    store.store_batch([ev("start"), ev("stream", at=1, stream_data="x" * 1000)])
    size = store.size_bytes()
    assert size > 0
    assert store.get_stats(StatsFilter()).database_size_bytes == size
    assert store.health()["size_bytes"] == size


def test_failed_batch_leaves_nothing(make_store: Callable[..., SQLStore],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store()
    store.store_batch([ev("start")])
    statements = store._statements
    bad = "INSERT INTO no_such_table VALUES (" + ", ".join([statements.ph] * 11) + ")"
    monkeypatch.setattr(statements, "upsert_rollup", bad)
    with pytest.raises(Exception, match="no_such_table"):
        store.store_batch([ev("stream", at=1), ev("start", "s2", at=2)])
    monkeypatch.undo()
    assert len(store.query(QueryFilter())) == 1
    assert store.get_session("s2") is None
    session = store.get_session("s1")
    assert session is not None and session.event_count == 1
    result = store.store_batch([ev("stream", at=1)])  # the writer connection still works
    assert result.stored == 1


def test_locked_database_raises_and_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLStore(path, busy_timeout_ms=50)
    store.initialize()
    store.store_batch([ev("start")])
    with locked_by_another(path), pytest.raises(TransientStoreError, match="locked") as info:
        store.store_batch([ev("stream", at=1)])
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert store.store_batch([ev("stream", at=1)]).stored == 1
    session = store.get_session("s1")
    assert session is not None and session.event_count == 2
    store.shutdown()


def test_corrupt_file_gives_one_line_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    with pytest.raises(StoreError) as info:
        SQLStore(path).initialize()
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "is not a SQLite database" in message


def test_creates_parent_directory_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "t.db"
    first = SQLStore(str(path))
    first.store_batch([ev("start")])  # initialises on first use
    first.shutdown()
    again = SQLStore(f"sqlite:///{path}")
    again.initialize()
    assert [e.event_type for e in again.query(QueryFilter())] == ["start"]
    again.shutdown()


def test_prune_by_max_size_deletes_oldest_and_vacuums(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = SQLStore(path, max_size_mb=0.5)
    store.initialize()
    for b in range(6):
        store.store_batch([ev("stream", f"s{i // 100}", at=b * 1000 + i, stream_data="x" * 400)
                           for i in range(b * 200, b * 200 + 200)])
    before = store.size_bytes()
    assert before > 512 * 1024
    removed = store.prune()
    assert removed > 0
    assert store.size_bytes() <= 512 * 1024
    left = store.query(QueryFilter())
    assert len(left) == 1200 - removed
    oldest_left = min(e.timestamp for e in left)
    assert oldest_left > T0  # the oldest went first
    assert store.check() == []
    assert store.query(QueryFilter(contains="xxxx", limit=1))  # FTS rebuilt after VACUUM
    # The running totals were corrected by the deletes: they agree with a recount of a time range.
    totals, recount = store.get_stats(StatsFilter()), store.get_stats(StatsFilter(since=0, until=T0 * 2))
    assert totals.total_events == recount.total_events == len(left)
    assert (totals.total_sessions, totals.agents) == (recount.total_sessions, recount.agents)
    assert totals.total_sessions == len({e.session_id for e in left})
    store.shutdown()


def test_prune_days(make_store: Callable[..., SQLStore]) -> None:
    store = make_store(prune_days=30)
    from vibekit_telemetry.events import now_ms

    store.store_batch([ev("start", "old"), ev("start", "new", at=now_ms() - T0)])
    assert store.prune() == 1
    assert store.existing_sessions(["old", "new"]) == {"new"}


def test_check_reindex_compact_and_audit(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    store.store_batch([ev("start", label="hello"), ev("stream", at=1, stream_data="world")])
    assert store.check() == []
    store.reindex()
    store.compact()
    assert [e.event_type for e in store.query(QueryFilter(contains="orl"))] == ["stream"]
    store.record_audit("alice", "clean", "events", {"older_than": "30d"})
    store.record_audit("key:abc", "export", None, None)
    log = store.audit_log(10)
    assert [(a["actor"], a["action"]) for a in log] == [("key:abc", "export"), ("alice", "clean")]
    assert log[1]["details"] == {"older_than": "30d"} and log[1]["target"] == "events"


def test_disabling_indexes_drops_them_and_queries_still_work(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    store = SQLStore(path, enable_indexes=False)
    store.store_batch([ev("start"), ev("stream", at=1)])
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "ix_events_session_ts" not in names and "ix_events_timestamp" not in names
    assert len(store.query(QueryFilter(session_ids=["s1"]))) == 2
    store.shutdown()
    SQLStore(path).initialize()  # default re-creates them
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"ix_events_session_ts", "ix_events_timestamp", "ix_events_category_ts"} <= names


def test_check_reports_foreign_key_damage(tmp_path: Path) -> None:
    path = tmp_path / "fk.db"
    store = SQLStore(path)
    store.store_batch([ev("start")])
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("DELETE FROM sessions")
    raw.commit()
    raw.close()
    problems = store.check()
    assert problems and "foreign key" in problems[0]
    store.shutdown()


def test_importing_the_store_package_does_not_import_sqlalchemy() -> None:
    code = ("import sys, vibekit_telemetry.store as s; assert 'sqlalchemy' not in sys.modules; "
            "s.MemoryStore(); assert s.SQLStore.__name__ == 'SQLStore'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_postgres_url_spellings_are_normalised() -> None:
    assert SQLStore("postgres://u@h/db").url == "postgresql+psycopg://u@h/db"
    assert SQLStore("relative.db").url.startswith("sqlite:////")
    with pytest.raises(StoreError, match="unsupported"):
        SQLStore("mysql://u@h/db")


def test_a_batch_spanning_several_insert_statements_is_stored_whole_and_exact(
        make_store: Callable[..., SQLStore]) -> None:
    # SQLite inserts events MULTI_ROW a statement: 300 events are three statements (125, 125, 50).
    store = make_store()
    events = [ev("start", "big")] + [ev("stream", "big", at=n, stream_data=f"chunk {n}", value=n / 2,
                                        metadata={"n": n}, event_id=f"big-{n:03d}") for n in range(1, 299)]
    events.append(ev("end", "big", at=300, duration=1.5))
    assert store.store_batch(events).stored == 300
    stored = {e.event_id: e for e in store.query(QueryFilter(session_ids=["big"], limit=1000))}
    assert len(stored) == 300
    assert stored["big-007"].stream_data == "chunk 7" and stored["big-007"].value == 3.5
    assert stored["big-298"].metadata == {"n": 298} and stored["big-298"].timestamp == T0 + 298
    session = store.get_session("big")
    assert session is not None and session.event_count == 300


def test_a_replayed_id_in_a_later_insert_statement_skips_only_that_event(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    assert store.store_batch([ev("start", "r"), ev("stream", "r", at=1, event_id="seen-before")]).stored == 2
    # The replayed id sits in the third statement of the batch: that statement fails as a whole, the
    # store writes the batch again with the stored ids looked up, and only the replay is skipped.
    batch = [ev("stream", "r", at=n, event_id=f"r-{n:03d}") for n in range(2, 262)]
    batch.insert(255, ev("stream", "r", at=1, event_id="seen-before"))
    result = store.store_batch(batch)
    assert (result.stored, result.duplicates) == (260, 1)
    session = store.get_session("r")
    assert session is not None and session.event_count == 262
