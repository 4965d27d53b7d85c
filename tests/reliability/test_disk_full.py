"""A disk that fills up under the SQLite store: a clear health error, no crash, writes resume when space returns."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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
