"""A remote primary (a private PostgreSQL) that goes away: the spool keeps every event, replays exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_cluster import PrivatePostgres, why_not

from vibekit_telemetry import Telemetry

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")

OUTAGE_S = 30.0
BLOCK_TIMEOUT_MS = 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()


def _options(pg: PrivatePostgres, spool: Path) -> dict[str, Any]:
    return {"database_url": pg.url, "stream_flush_interval_ms": 50, "block_timeout_ms": BLOCK_TIMEOUT_MS,
            "reliability": {"circuit_breaker": {"threshold": 3, "timeout": 1000},
                            "retry": {"max_attempts": 2, "base_ms": 50, "max_ms": 200},
                            "spool_path": str(spool)}}


def _counts(pg: PrivatePostgres) -> tuple[int, int, dict[str, int], dict[str, int]]:
    dsn = pg.url.replace("+psycopg", "")
    with psycopg.connect(dsn) as conn:
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        per_session = dict(conn.execute("SELECT session_id, count(*) FROM events GROUP BY session_id").fetchall())
        counters = dict(conn.execute("SELECT id, event_count FROM sessions").fetchall())
    return int(total), int(distinct), per_session, counters


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def test_postgres_stopped_under_load_loses_nothing_and_duplicates_nothing(cluster: PrivatePostgres,
                                                                          tmp_path: Path) -> None:
    telemetry = Telemetry(**_options(cluster, tmp_path / "spool.db"))
    connection_errors: list[BaseException] = []
    telemetry.on("connection:error", connection_errors.append)
    sessions: list[str] = []
    slowest = [0.0]
    stop = threading.Event()

    def load() -> None:
        # Steady load: one five-event session every 10 ms (~500 events/s), timing every call.
        while not stop.is_set():
            started = time.perf_counter()
            sid = telemetry.track_start("claude", "code", "steady load")
            for n in range(3):
                telemetry.track_stream(sid, f"chunk {n}")
            telemetry.track_end(sid)
            slowest[0] = max(slowest[0], (time.perf_counter() - started) / 5)
            sessions.append(sid)
            time.sleep(0.01)

    producer = threading.Thread(target=load)
    breaker_states: set[str] = set()
    try:
        producer.start()
        time.sleep(3)
        cluster.stop()
        outage_ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_ends:
            breaker_states.add(telemetry.get_health_status()["primary"]["breaker"]["state"])
            time.sleep(1)
        during = telemetry.get_health_status()
        cluster.start()
        time.sleep(3)
        stop.set()
        producer.join()
        assert telemetry.flush(60)
        assert _wait(lambda: telemetry.get_health_status()["spool"]["depth"] == 0, 60)
        after = telemetry.get_health_status()
    finally:
        stop.set()
        producer.join()
        telemetry.shutdown()

    # The breaker opened during the outage (and a probe went out: half_open) and closed after it.
    assert "open" in breaker_states
    assert after["primary"]["breaker"]["state"] == "closed"
    assert after["primary"]["breaker"]["times_opened"] >= 1
    assert connection_errors
    # During the outage the health report said so, with the spool holding the backlog.
    assert not during["healthy"] and during["spool"]["depth"] > 0
    assert any("circuit breaker" in issue or "spool" in issue for issue in during["issues"])
    # Zero lost, none duplicated, session counters exact.
    total, distinct, per_session, counters = _counts(cluster)
    assert total == distinct == 5 * len(sessions)
    assert all(per_session.get(sid) == 5 for sid in sessions)
    assert all(counters.get(sid) == 5 for sid in sessions)
    assert after["dropped_total"] == 0 and after["healthy"], after["issues"]
    # The app thread never waited longer than its enqueue timeout (plus scheduling slack on a busy box).
    assert slowest[0] < BLOCK_TIMEOUT_MS / 1000 + 1.0


def test_spooled_events_survive_a_restart_and_are_replayed_once(cluster: PrivatePostgres, tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"
    cluster.stop()
    try:
        first = Telemetry(**_options(cluster, spool))
        sids = []
        for i in range(200):
            sid = first.track_start("codex", "ask", f"offline {i}")
            first.track_end(sid)
            sids.append(sid)
        assert first.flush(60)
        assert first.get_health_status()["spool"]["depth"] == 400
        assert first.shutdown(30)
    finally:
        cluster.start()
    second = Telemetry(**_options(cluster, spool))
    try:
        assert _wait(lambda: second.get_health_status()["spool"]["depth"] == 0, 60)
        # A third start finds an empty spool: nothing is replayed twice.
        third = Telemetry(**_options(cluster, spool))
        third.shutdown()
    finally:
        second.shutdown()
    _, _, per_session, counters = _counts(cluster)
    assert all(per_session.get(sid) == 2 and counters.get(sid) == 2 for sid in sids)


KILLED_WRITER = """
import json, os, signal, sys
from vibekit_telemetry import Telemetry

options = json.loads(sys.argv[1])
telemetry = Telemetry(**options)
sids = []
for i in range(100):
    sid = telemetry.track_start("gemini", "chat", f"before kill -9 {i}")
    telemetry.track_end(sid)
    sids.append(sid)
assert telemetry.flush(60)
assert telemetry.get_health_status()["spool"]["depth"] == 200
print(json.dumps(sids), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no shutdown, no atexit: what is spooled must already be on disk
"""


def test_spooled_events_survive_kill_9(cluster: PrivatePostgres, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    spool = tmp_path / "spool.db"
    options = _options(cluster, spool)
    cluster.stop()
    try:
        done = subprocess.run([sys.executable, "-c", KILLED_WRITER, json.dumps(options)], capture_output=True,
                              text=True, timeout=300)
    finally:
        cluster.start()
    assert done.returncode == -9, done.stderr[-2000:]
    sids = json.loads(done.stdout)
    telemetry = Telemetry(**options)
    try:
        assert _wait(lambda: telemetry.get_health_status()["spool"]["depth"] == 0, 60)
    finally:
        telemetry.shutdown()
    _, _, per_session, counters = _counts(cluster)
    assert all(per_session.get(sid) == 2 and counters.get(sid) == 2 for sid in sids)
