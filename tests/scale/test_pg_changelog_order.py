"""Two writer processes on one PostgreSQL commit change-log positions out of order: a follower skips nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from replica_support import wait_for

from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.exporters.follower import StoreFollower
from vibekit_telemetry.exporters.store_copy import StoreExporter
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore

# A writer process: once told to go (a line on stdin), `batches` batches of `size` stream events of one
# session, each its own transaction. Started ahead, so the interpreters' start-up overlaps.
WRITER = """
import sys
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.store.sql import SQLStore
url, session, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = SQLStore(url)
store.initialize()
sys.stdin.readline()
for b in range(batches):
    store.store_batch([TelemetryEvent("stream", "claude", session_id=session, stream_data=f"{b}.{i}",
                                      event_id=f"{session}-{b}-{i}", timestamp=now_ms()) for i in range(size)])
store.shutdown()
"""


def _writer(pg_url: str, session: str, batches: int, size: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, pg_url, session, str(batches), str(size)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _go(writer: subprocess.Popen[str]) -> None:
    """Let a writer write."""
    assert writer.stdin is not None
    writer.stdin.write("go\n")
    writer.stdin.close()


def _start(store: SQLStore, session: str) -> None:
    store.store_batch([TelemetryEvent("start", "claude", session_id=session, event_id=f"{session}-start",
                                      action="code", label="go", timestamp=now_ms())])


@pytest.fixture
def central(pg_url: str) -> Iterator[SQLStore]:
    """The shared PostgreSQL store, migrated, with two sessions started."""
    store = SQLStore(pg_url)
    store.initialize()
    for session in ("slow", "fast"):
        _start(store, session)
    yield store
    store.shutdown()


def _follow(central: SQLStore, tmp_path: Path) -> tuple[StoreFollower, SQLStore]:
    """A real exporter following the central store into a SQLite file from the beginning, polling often."""
    target = SQLStore(tmp_path / "copy.db")
    target.initialize()
    follower = StoreFollower(StoreExporter(target, 1), central, poll_interval_s=0.02, start_at="beginning")
    follower.start()
    return follower, target


def _blocked_by(store: SQLStore, pid: int) -> int:
    """How many database sessions wait for a lock that session `pid` holds."""
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE %(pid)s = ANY(pg_blocking_pids(pid))", {"pid": pid}).scalar_one())


def _copied(target: SQLStore) -> list[str]:
    return sorted(e.event_id or "" for e in target.query(QueryFilter(limit=100_000)))


def test_a_row_committed_late_below_newer_rows_is_not_skipped(central: SQLStore, pg_url: str,
                                                               tmp_path: Path) -> None:
    follower, target = _follow(central, tmp_path)
    locker = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        wait_for(lambda: len(_copied(target)) == 2, "the two start events to be copied")
        # Hold session "slow"'s row: a writer of it takes its positions (COPY), then waits on the row.
        locker.execute("SELECT id FROM sessions WHERE id = 'slow' FOR UPDATE")
        slow, fast = _writer(pg_url, "slow", 1, 50), _writer(pg_url, "fast", 1, 50)
        _go(slow)
        wait_for(lambda: _blocked_by(central, locker.info.backend_pid) == 1, "the slow writer to wait on the row")
        _go(fast)  # takes higher positions and commits first
        assert fast.wait(timeout=60) == 0, fast.stderr.read() if fast.stderr else ""
        # The follower polls every 20 ms meanwhile: the fast rows sit above positions still in flight,
        # so it must not read (and move its cursor past) them yet.
        time.sleep(0.5)
        assert [e.event_id for _, e in central.read_committed(2, 1000)] == []
        assert len(_copied(target)) == 2
        locker.rollback()  # the slow writer goes on and commits its lower positions
        assert slow.wait(timeout=60) == 0, slow.stderr.read() if slow.stderr else ""
        expected = sorted([f"{s}-start" for s in ("slow", "fast")] + [f"{s}-0-{i}" for s in ("slow", "fast")
                                                                        for i in range(50)])
        wait_for(lambda: _copied(target) == expected, "every event to be copied once")
    finally:
        locker.close()
        follower.shutdown()
        target.shutdown()


def test_two_concurrent_writer_processes_and_a_follower_lose_nothing(central: SQLStore, pg_url: str,
                                                                     tmp_path: Path) -> None:
    follower, target = _follow(central, tmp_path)
    try:
        writers = [_writer(pg_url, session, 10, 25) for session in ("slow", "fast")]
        for writer in writers:
            _go(writer)
        for writer in writers:
            assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
        expected = sorted([f"{s}-start" for s in ("slow", "fast")] +
                          [f"{s}-{b}-{i}" for s in ("slow", "fast") for b in range(10) for i in range(25)])
        wait_for(lambda: _copied(target) == expected, "every event to be copied once")
        assert central.committed_position() == max(p for p, _ in central.read_committed(0, 10_000))
    finally:
        follower.shutdown()
        target.shutdown()
