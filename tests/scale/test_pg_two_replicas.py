"""Two `telemetry api` processes on one PostgreSQL: one session's events spread over both, counts exact."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from servers import ServerProcess
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore

KEY = "replica-key-0123456789"


def _replica(pg_url: str, tmp: Path) -> ServerProcess:
    env = {"TELEMETRY_DATABASE_URL": pg_url.replace("postgresql+psycopg://", "postgresql://")}
    return ServerProcess(None, "--api-key", f"{KEY}:ingest+read", env=env, cwd=tmp, log_level="warning",
                         ready=False)


def test_one_session_over_two_replicas_is_counted_exactly(pg_url: str, tmp_path: Path) -> None:
    replicas = [_replica(pg_url, tmp_path) for _ in range(2)]  # started together on a new schema
    try:
        for replica in replicas:
            replica.wait_ready()
        urls = [replica.url for replica in replicas]
        headers = {"X-API-Key": KEY}
        start = {"event_type": "start", "session_id": "shared", "agent_type": "claude", "mode": "code",
                 "prompt": "go", "event_id": "shared-start"}
        assert httpx.post(urls[0] + "/api/events", json=start, headers=headers, timeout=30).status_code == 200
        errors: list[str] = []

        def load(worker: int) -> None:
            # Each worker sends 10 batches of 20 streams, alternating replicas; one batch is sent twice.
            with httpx.Client(headers=headers, timeout=60) as http:
                for b in range(10):
                    batch = [{"event_type": "stream", "session_id": "shared", "stream_data": f"{worker}.{b}.{i}",
                              "event_id": f"w{worker}-b{b}-{i}"} for i in range(20)]
                    for url in ([urls[(worker + b) % 2]] + ([urls[(worker + b + 1) % 2]] if b == 3 else [])):
                        answer = http.post(url + "/api/events", json=batch)
                        if answer.status_code != 200:
                            errors.append(f"{answer.status_code} {answer.text[:200]}")

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        end = {"event_type": "end", "session_id": "shared", "event_id": "shared-end"}
        assert httpx.post(urls[1] + "/api/events", json=end, headers=headers, timeout=30).status_code == 200
    finally:
        for replica in replicas:
            replica.process.terminate()
        for replica in replicas:
            replica.stop()
    store = SQLStore(pg_url)
    try:
        session = store.get_session("shared")
        assert session is not None
        assert (session.event_count, session.stream_count, session.status) == (802, 800, "completed")
        assert len(store.query(QueryFilter(session_ids=["shared"]))) == 802
    finally:
        store.shutdown()
