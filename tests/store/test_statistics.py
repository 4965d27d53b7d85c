"""Planner statistics: the store-upkeep job, migrations and `telemetry vacuum` keep sqlite_stat1 fresh.

Without statistics SQLite plans an agent filter plus a sort by the agent's index and a sort of all its
sessions (56 ms a page over 100,000 sessions, bench/RESULTS.md); with them it walks the sort index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import ev
from click.testing import CliRunner
from sqlalchemy import event

from vibekit_telemetry import Telemetry
from vibekit_telemetry.store import SQLStore, migrate

AGENTS = ("claude", "codex", "gemini", "opencode", "grok")
PAGE_SQL = ("SELECT id FROM sessions WHERE category = 'codex' "
            "ORDER BY duration DESC, start_time DESC, id DESC LIMIT 50")


def _stat1(path: Path) -> dict[str, set[str]]:
    """Table -> the indexes sqlite_stat1 holds statistics of (read by another connection, as a user would)."""
    conn = sqlite3.connect(path)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return {}
        found: dict[str, set[str]] = {}
        for table, index in conn.execute("SELECT tbl, idx FROM sqlite_stat1"):
            found.setdefault(table, set()).add(index)
        return found
    finally:
        conn.close()


def _sessions(store: Any, first: int, count: int) -> None:
    """`count` ended sessions over five agents, numbered from `first`."""
    batch = []
    for n in range(first, first + count):
        batch += [ev("start", f"s{n:05d}", AGENTS[n % 5], at=n * 1000),
                  ev("end", f"s{n:05d}", None, at=n * 1000 + (n * 7919) % 600_000)]
    store.store_batch(batch)


def test_the_store_upkeep_job_gathers_statistics(make_telemetry: Callable[..., Telemetry], db_path: Path) -> None:
    telemetry = make_telemetry()
    for n in range(50):
        with telemetry.session(AGENTS[n % 5], mode="chat", prompt=f"p{n}") as s:
            s.stream("chunk")
    assert telemetry.flush(timeout=30)
    runtime: Any = telemetry.runtime
    runtime.scheduler.run_now("store-upkeep")  # the job the scheduler runs every maintenance interval
    job = runtime.scheduler.status()["store-upkeep"]
    assert job["failures"] == 0, job["last_error"]
    stats = _stat1(db_path)
    assert {"ix_sessions_sort_duration", "ix_sessions_category", "ix_sessions_sort_start"} <= stats["sessions"]
    assert {"ix_events_session_ts", "ix_events_timestamp"} <= stats["events"]


def test_a_table_is_analyzed_again_only_once_it_has_doubled(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "t.db")
    try:
        store.initialize()
        assert store.upkeep() == [] and store.refresh_statistics() == []  # empty: nothing to analyze
        _sessions(store, 0, 100)
        assert {"sessions", "events"} <= set(store.refresh_statistics())
        assert store.refresh_statistics() == []  # fresh: no write lock taken, nothing done
        _sessions(store, 100, 50)
        assert "sessions" not in store.refresh_statistics()  # 1.5x: the statistics still describe it
        _sessions(store, 150, 60)
        assert {"sessions", "events"} <= set(store.refresh_statistics())  # 2.1x
        store.clean(session_ids=[f"s{n:05d}" for n in range(160)])
        assert "sessions" in store.refresh_statistics()  # halved: the oldest 160 went
    finally:
        store.shutdown()


def test_pooled_readers_plan_with_the_new_statistics(tmp_path: Path) -> None:
    # A connection loads sqlite_stat1 when it opens, never after: the pool's readers must be told.
    store = SQLStore(tmp_path / "t.db")
    try:
        store.initialize()
        _sessions(store, 0, 2000)
        opened: list[Any] = []
        event.listen(store.engine, "connect", lambda conn, _record: opened.append(conn))

        def plans() -> list[str]:
            with store.engine.connect() as a, store.engine.connect() as b:  # two pooled readers at once
                return [" ".join(str(r[-1]) for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + PAGE_SQL))
                        for c in (a, b)]

        # No statistics: the agent's index, then a sort of every session of the agent.
        assert all("TEMP B-TREE" in plan for plan in plans())
        assert "sessions" in store.refresh_statistics()
        after = plans()
        assert all("ix_sessions_sort_duration" in p and "TEMP B-TREE" not in p for p in after), after
        assert len(opened) == 2  # the two readers, opened before the statistics and reused after
    finally:
        store.shutdown()


def test_vacuum_analyzes_every_table(make_telemetry: Callable[..., Telemetry], db_path: Path) -> None:
    from vibekit_telemetry.cli import cli

    telemetry = make_telemetry()
    store: Any = telemetry.store
    _sessions(store, 0, 20)
    store.refresh_statistics()
    telemetry.shutdown()
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM sqlite_stat1")
    result = CliRunner().invoke(cli, ["vacuum", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert {"sessions", "events", "rollups", "session_totals"} <= set(_stat1(db_path))


def test_an_upgraded_store_is_analyzed_when_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLStore(path)
    store.initialize()
    _sessions(store, 0, 100)
    migrate.downgrade(store.engine, "0014")  # as a store written by the previous release
    store.shutdown()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE IF EXISTS sqlite_stat1")
    reopened = SQLStore(path)
    try:
        reopened.initialize()  # migrates to 0015, then analyzes the tables the migration changed
        assert migrate.current_version(reopened.engine) == migrate.head_version()
        assert "ix_sessions_sort_start" in _stat1(path)["sessions"]
    finally:
        reopened.shutdown()


def test_postgresql_leaves_statistics_to_autovacuum(pg_url: str) -> None:
    store = SQLStore(pg_url)
    try:
        store.initialize()
        _sessions(store, 0, 100)
        store.upkeep()  # the scheduled job: partitions ahead, totals folded, no statistics of its own
        assert store.refresh_statistics() == []
        assert store.refresh_statistics(every_table=True) == []
    finally:
        store.shutdown()


@pytest.mark.parametrize("every_table", [False, True])
def test_an_in_memory_sqlite_store_refreshes_without_error(every_table: bool) -> None:
    store = SQLStore("sqlite://")
    try:
        store.initialize()
        _sessions(store, 0, 10)
        store.refresh_statistics(every_table=every_table)
    finally:
        store.shutdown()
