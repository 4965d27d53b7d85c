"""PostgreSQL: a dropped writer connection is replaced, and a forked child never closes the parent's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg

from pg_support import PG_DSN
from vibekit_telemetry import Telemetry


def _kill_sessions(application_name: str) -> int:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchall()
    return len(rows)


def test_writer_reconnects_after_the_server_drops_it(pg_url: str) -> None:
    name = "vk_" + uuid.uuid4().hex[:10]
    telemetry = Telemetry(database_url=f"{pg_url}&application_name={name}", stream_flush_interval_ms=20,
                          retry_delay_ms=10)
    try:
        first = telemetry.track_start("claude", "code", "before the drop")
        assert telemetry.flush(10)
        assert _kill_sessions(name) >= 1
        later = [telemetry.track_start("claude", "code", f"after the drop {i}") for i in range(3)]
        for sid in later:
            telemetry.track_end(sid, "completed")
        assert telemetry.flush(20)
        assert all(telemetry.get_session(s) is not None for s in [first, *later])
        health = telemetry.get_health_status()
        assert health["dropped"]["store_failures"] == 0 and health["events"]["retries"] >= 1
    finally:
        telemetry.shutdown()


def test_a_forked_child_that_exits_leaves_the_parents_connection_alone(pg_url: str, tmp_path: Path) -> None:
    script = tmp_path / "fork_child.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from vibekit_telemetry import Telemetry

        t = Telemetry(database_url={pg_url!r}, stream_flush_interval_ms=20)
        t.track_start("claude", "code", "parent before fork")
        assert t.flush(10)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)            # runs the child's atexit hooks: it must not close the parent's socket
        os.waitpid(pid, 0)
        for i in range(3):
            t.track_start("claude", "code", f"parent after fork {{i}}")
        assert t.flush(20)
        health = t.get_health_status()
        print(len(t.get_sessions()), health["dropped"]["store_failures"])
        t.shutdown()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["4", "0"]
