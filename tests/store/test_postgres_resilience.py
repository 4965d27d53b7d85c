"""PostgreSQL: a lost writer connection is replaced, a forked child keeps off the parent's, held locks hang nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
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


def test_a_lock_never_released_hangs_nothing_and_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    # Another session takes the sessions table and sits on it (idle in a transaction). The writer, the
    # scheduler's upkeep and every read used to wait on it for ever: flush(timeout) and the health report
    # never returned. Now each gives up after lock_timeout_ms: the batch is retried, then spooled (the
    # documented path for a primary that cannot take it), health says why, and once the lock goes the
    # spool is replayed.
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    telemetry = Telemetry(storage=[{"type": "postgresql", "options": {"url": pg_url, "lock_timeout_ms": 200}}],
                          reliability={"circuitBreaker": {"threshold": 3, "timeout": 1000},
                                       "retry": {"maxAttempts": 2, "baseMs": 10},
                                       "spoolPath": str(tmp_path / "spool.db")})
    try:
        sid = telemetry.track_start(category="claude", action="code")
        assert telemetry.flush(10)
        with psycopg.connect(PG_DSN) as holder:
            holder.execute(f"LOCK TABLE {schema}.sessions IN ACCESS EXCLUSIVE MODE")
            for i in range(50):
                telemetry.track_stream(session_id=sid, stream_data=f"chunk {i}")
            started = time.monotonic()
            assert telemetry.flush(10)  # spooled: durable on this host
            health = telemetry.get_health_status()
            assert time.monotonic() - started < 10
            assert "lock timeout" in str(health["last_error"]).lower()
            assert health["spool"]["depth"] == 50
            holder.rollback()
        deadline = time.monotonic() + 20
        while telemetry.get_health_status()["spool"]["depth"] and time.monotonic() < deadline:
            time.sleep(0.2)
        session = telemetry.get_session(sid)
        assert session is not None and session.event_count == 51
        assert telemetry.get_health_status()["dropped_total"] == 0
    finally:
        telemetry.shutdown()
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {schema}.events").fetchone() == (51, 51)


def test_lock_timeout_ms_is_checked(pg_url: str) -> None:
    import pytest

    from vibekit_telemetry.errors import ValidationError

    for bad in (0, -5, "5s", True, 10**9):
        with pytest.raises(ValidationError,
                           match=r"storage\[0\]\.options\.lock_timeout_ms: expected an integer from 1 to 600000"):
            Telemetry(storage=[{"type": "postgresql", "options": {"url": pg_url, "lock_timeout_ms": bad}}])
