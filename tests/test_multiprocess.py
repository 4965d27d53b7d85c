"""Several processes writing one SQLite file at once lose nothing (WAL, busy timeout, retries)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

WRITER = """
import sys
from vibekit_telemetry import Telemetry

name, db = sys.argv[1], sys.argv[2]
t = Telemetry(db_path=db, stream_batch_size=20, stream_flush_interval_ms=5)
for s in range(20):
    sid = t.track_start(name, "code", f"{name} session {s}")
    for i in range(50):
        t.track_stream(sid, f"{name} {s} chunk {i}")
    t.track_end(sid, "completed")
assert t.flush(60)
health = t.get_health_status()
assert health["dropped_total"] == 0, health
t.shutdown()
"""


def test_three_processes_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), f"agent{n}", str(db)], stderr=subprocess.PIPE,
                              text=True) for n in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3 * 20 * 52
        rows = conn.execute("SELECT category, COUNT(*), SUM(stream_count), MIN(status), MAX(status) "
                            "FROM sessions GROUP BY category ORDER BY category").fetchall()
        # Each writer recorded its own metrics row at shutdown.
        runs = conn.execute("SELECT pid, events_written, dropped FROM writer_runs").fetchall()
    assert rows == [(f"agent{n}", 20, 1000, "completed", "completed") for n in range(3)]
    assert sorted(r[1:] for r in runs) == [(1040, 0)] * 3 and len({r[0] for r in runs}) == 3
