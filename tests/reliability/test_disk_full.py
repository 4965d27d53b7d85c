"""A disk that fills up under the SQLite store: a clear health error, no crash, writes resume when space returns."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry


def _mount_reason() -> str | None:
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    reason = _mount_reason()
    if reason:
        pytest.skip(reason)
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path: Path) -> None:
    """Write zeros until the file system says ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_full_disk_is_reported_and_writes_resume(small_disk: Path) -> None:
    db = small_disk / "telemetry.db"
    telemetry = Telemetry(db_path=str(db), stream_flush_interval_ms=20, retry_delay_ms=20,
                          reliability={"min_free_disk_mb": 0})
    try:
        sid = telemetry.track_start("claude", "code", "before the disk fills")
        assert telemetry.flush(10)
        _fill(small_disk / "filler")
        payload = "x" * 8192
        for i in range(400):  # ~3 MB: more than is left
            assert telemetry.track_stream(sid, f"{i} {payload}")  # accepted: the app is never refused or crashed
        deadline = time.monotonic() + 60
        health = telemetry.get_health_status()
        while not health["disk"]["full"] and time.monotonic() < deadline:
            time.sleep(0.2)
            health = telemetry.get_health_status()
        assert health["disk"]["full"] and "full" in health["disk"]["full"]
        assert not health["healthy"] and health["status"] == "unhealthy"
        assert any(issue.startswith("disk full") for issue in health["issues"])
        assert health["writer"]["alive"]

        (small_disk / "filler").unlink()  # space returns
        telemetry.track_end(sid)
        assert telemetry.flush(60)
        after = telemetry.get_health_status()
        assert after["disk"]["full"] is None
        assert after["dropped_total"] == 0
    finally:
        telemetry.shutdown()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE session_id = ?", (sid,)).fetchone()[0] == 402
        assert conn.execute("SELECT event_count FROM sessions WHERE id = ?", (sid,)).fetchone()[0] == 402


def _fill_leaving(path: Path, leave_mb: float) -> None:
    """Write zeros until only about `leave_mb` MB are free on the file system."""
    stat = os.statvfs(path.parent)
    size = stat.f_bavail * stat.f_frsize - int(leave_mb * 1_048_576)
    with open(path, "wb") as out:
        while size > 0:
            chunk = min(size, 1 << 20)
            out.write(b"\0" * chunk)
            size -= chunk


def test_low_free_disk_holds_commits_before_sqlite_runs_out(small_disk: Path) -> None:
    db = small_disk / "telemetry.db"
    telemetry = Telemetry(db_path=str(db), stream_flush_interval_ms=20, retry_delay_ms=20,
                          reliability={"min_free_disk_mb": 2, "disk_check_interval_ms": 50})
    try:
        sid = telemetry.track_start("claude", "code", "before the disk runs low")
        assert telemetry.flush(10)
        _fill_leaving(small_disk / "filler", 1.0)  # 1 MB left: under the 2 MB minimum, room for SQLite
        time.sleep(0.2)  # past disk_check_interval_ms: the cached free space is stale now
        for i in range(20):
            assert telemetry.track_stream(sid, f"{i} " + "y" * 1000)  # accepted: held in the queue
        health = _until_health(telemetry, lambda h: bool(h["disk"]["full"]))
        full = health["disk"]["full"]
        assert "below min_free_disk_mb" in full and "writes are held" in full
        assert health["disk"]["held"] >= 1 and health["status"] == "unhealthy" and health["writer"]["alive"]
        assert any(issue.startswith("disk full") for issue in health["issues"])
        with sqlite3.connect(db) as conn:  # held, not half-written: only the first event is in
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1

        (small_disk / "filler").unlink()  # space returns: the held batch goes in
        telemetry.track_end(sid)
        assert telemetry.flush(30)
        after = telemetry.get_health_status()
        assert after["disk"]["full"] is None and after["dropped_total"] == 0
    finally:
        telemetry.shutdown()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE session_id = ?", (sid,)).fetchone()[0] == 22


def test_sqlite_full_is_a_typed_error(small_disk: Path) -> None:
    from vibekit_telemetry.errors import DiskFullError, TransientStoreError
    from vibekit_telemetry.events import TelemetryEvent
    from vibekit_telemetry.store import SQLStore

    store = SQLStore(str(small_disk / "typed.db"))
    store.initialize()
    try:
        _fill(small_disk / "filler")
        batch = [TelemetryEvent("custom", "c", action="a", label="z" * 8000, timestamp=1, event_id=f"e{i}")
                 for i in range(200)]
        with pytest.raises(DiskFullError, match="disk full") as caught:
            store.store_batch(batch)
        assert isinstance(caught.value, TransientStoreError)  # waited out by the writer, never dropped
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        store.shutdown()


def _until_health(telemetry: Telemetry, check: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    health = telemetry.get_health_status()
    while not check(health) and time.monotonic() < deadline:
        time.sleep(0.1)
        health = telemetry.get_health_status()
    return health


def test_a_full_disk_under_the_spool_holds_batches_until_space_returns(small_disk: Path) -> None:
    # The primary is a PostgreSQL server that is not there: every batch goes to the spool, on the small disk.
    telemetry = Telemetry(
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
        stream_flush_interval_ms=20, retry_delay_ms=20,
        reliability={"spool_path": str(small_disk / "spool.db"), "min_free_disk_mb": 2,
                     "disk_check_interval_ms": 50, "retry": {"max_attempts": 0},
                     "circuit_breaker": {"threshold": 1, "timeout": 600_000}})
    try:
        sid = telemetry.track_start("claude", "code", "spooled")
        assert telemetry.flush(10)
        _fill_leaving(small_disk / "filler", 1.0)
        time.sleep(0.2)  # past disk_check_interval_ms
        for i in range(10):
            assert telemetry.track_stream(sid, f"{i} " + "s" * 500)
        health = _until_health(telemetry, lambda h: bool(h["disk"]["full"]))
        assert "spool" in health["disk"]["full"] and "below min_free_disk_mb" in health["disk"]["full"]
        assert health["spool"]["depth"] == 1 and health["writer"]["alive"]
        (small_disk / "filler").unlink()
        assert telemetry.flush(30)
        after = telemetry.get_health_status()
        assert after["spool"]["depth"] == 11 and after["disk"]["full"] is None and after["dropped_total"] == 0
    finally:
        telemetry.shutdown(timeout=5)
