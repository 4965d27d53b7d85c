"""Acknowledged means durable: `kill -9` of a real server under load, and of an SDK process after flush()."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from servers import ServerProcess, child_pids


def _stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT event_id FROM events")]


def _load(url: str, acknowledged: list[str], lock: threading.Lock, stop: threading.Event, n: int) -> None:
    """One client: batches of 100 until stopped or the server is gone; records what was acknowledged."""
    with httpx.Client(base_url=url, timeout=30) as http:
        batch_no = 0
        while not stop.is_set():
            sid = f"c{n}-{batch_no}"
            batch = [{"event_type": "start", "session_id": sid, "category": "claude", "event_id": str(uuid.uuid4())}]
            batch += [{"event_type": "stream", "session_id": sid, "stream_data": f"chunk {i}",
                       "event_id": str(uuid.uuid4())} for i in range(99)]
            try:
                response = http.post("/api/events", json=batch)
            except httpx.TransportError:
                return  # the server is gone: this batch was never acknowledged
            if response.status_code == 200:
                assert response.json()["committed"] is True
                with lock:
                    acknowledged.extend(e["event_id"] for e in batch)
            batch_no += 1


def test_killing_the_writer_process_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with ServerProcess(db, "--writer-process", log_level="warning") as server:
        writers = child_pids(server.process.pid)
        assert len(writers) == 1, f"expected one writer process, found {writers}"
        threads = [threading.Thread(target=_load, args=(server.url, acknowledged, lock, stop, n)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        before = len(acknowledged)
        os.kill(writers[0], signal.SIGKILL)
        time.sleep(3)  # the next batch starts another writer; clients go on being acknowledged
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert len(acknowledged) > before + 1000, "no acknowledgements after the writer process was killed"
        health = httpx.get(server.url + "/api/health").json()
        replaced = child_pids(server.process.pid)
        assert len(replaced) == 1 and replaced != writers
    stored = _stored_ids(db)
    assert len(stored) == len(set(stored))
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events lost"
    assert health["status"] in ("healthy", "degraded"), health


@pytest.mark.parametrize("writer", ["--writer-process", "--no-writer-process"])
def test_every_acknowledged_event_survives_kill_9_of_the_server(tmp_path: Path, writer: str) -> None:
    db = tmp_path / "served.db"
    server = ServerProcess(db, writer, log_level="warning")
    url = server.url
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    threads = [threading.Thread(target=_load, args=(url, acknowledged, lock, stop, n)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert len(acknowledged) >= 1000, "the clients got too few acknowledgements to prove anything"
    # Restart on the same database (recovery runs), then look: every acknowledged event, exactly once.
    with ServerProcess(db, log_level="warning") as restarted:
        assert httpx.get(restarted.url + "/health").status_code == 200
    stored = _stored_ids(db)
    assert len(stored) == len(set(stored))
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged events lost"


SDK_SCRIPT = """
import sys
from vibekit_telemetry import Telemetry
t = Telemetry(db_path=sys.argv[1], stream_flush_interval_ms=60000)
for s in range(20):
    sid = t.track_start("claude", "code", f"session {s}", session_id=f"s{s}")
    for i in range(200):
        t.track_stream(sid, f"chunk {i}")
    t.track_end(sid, "completed")
ok = t.flush(30)
print("flushed" if ok else "not-flushed", flush=True)
for i in range(10**9):  # keep tracking until killed: nothing after the flush is promised
    t.track_stream("s0", f"late {i}")
"""


def test_every_event_tracked_before_flush_survives_kill_9_of_the_sdk_process(tmp_path: Path) -> None:
    db = tmp_path / "sdk.db"
    process = subprocess.Popen([sys.executable, "-c", SDK_SCRIPT, str(db)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    process.send_signal(signal.SIGKILL)  # right after flush() returned
    process.wait(timeout=10)
    assert line == "flushed"
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute(
            "SELECT event_type, count(*) FROM events WHERE stream_data IS NULL OR stream_data NOT LIKE 'late %' "
            "GROUP BY event_type").fetchall())
        sessions = conn.execute("SELECT count(*) FROM sessions WHERE status = 'completed'").fetchone()[0]
    assert counts == {"start": 20, "stream": 20 * 200, "end": 20}
    assert sessions == 20


@pytest.mark.parametrize("wait", ["false", None])
def test_fire_and_forget_is_asked_for_and_answered_202(tmp_path: Path, wait: str | None) -> None:
    db = tmp_path / "served.db"
    with ServerProcess(db, log_level="warning") as server:
        params = {"wait": wait} if wait else {}
        headers = {} if wait else {"Prefer": "respond-async"}
        response = httpx.post(server.url + "/api/events", params=params, headers=headers,
                              json={"event_type": "custom", "category": "c"})
        assert response.status_code == 202 and response.json()["committed"] is False
