"""Several processes, forked workers, threads and asyncio tasks writing one SQLite file: nothing lost, counters exact.

The issue's full run (4 processes x 250,000 events) is bench/bench_reliability.py; this test runs the same
writers at a size the test budget allows (VK_EVENTS_PER_PROCESS to run it bigger).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

PER_PROCESS = int(os.environ.get("VK_EVENTS_PER_PROCESS", "25000"))
SESSION_EVENTS = 50  # start, 48 chunks, end

WRITER = Path(__file__).with_name("multiwriter.py")


def _check(db: Path, writers: int, per_writer: int) -> None:
    sessions = per_writer // SESSION_EVENTS
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == writers * per_writer
        rows = conn.execute("SELECT event_count, stream_count, status FROM sessions").fetchall()
    assert len(rows) == writers * sessions
    assert set(rows) == {(SESSION_EVENTS, SESSION_EVENTS - 2, "completed")}


def test_four_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [subprocess.Popen([sys.executable, str(WRITER), f"p{n}", str(db), str(PER_PROCESS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    outputs = [proc.communicate(timeout=600) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "database is locked" not in err and "SQLITE_BUSY" not in err
    _check(db, 4, PER_PROCESS)


def test_forked_threads_and_asyncio_writers(tmp_path: Path) -> None:
    # In the writer process one Telemetry is made before the fork; 3 children (forked like gunicorn
    # workers) go on using it, with 2 threads and 2 asyncio tasks in each process, all at once.
    db = tmp_path / "shared.db"
    per_writer = 2_000
    code = subprocess.run([sys.executable, str(WRITER), "--fork", str(db), str(per_writer)],
                          capture_output=True, text=True, timeout=600)
    assert code.returncode == 0, code.stderr[-2000:]
    # 3 forked children x (2 threads + 2 asyncio tasks) + the parent's 2 threads + 2 tasks
    _check(db, 3 * 4 + 4, per_writer)
