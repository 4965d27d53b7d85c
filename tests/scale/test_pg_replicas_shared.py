"""Two real `telemetry api` replicas on one PostgreSQL share live streams, rate limits and scheduled jobs.

One pair of replica processes serves the module (starting them is most of the cost); the test that
kills one runs last.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from replica_support import Replica, drop_schema, new_schema_url, wait_for
from websockets.sync.client import connect

JOB = "export:replicated"
REDIS_URL = "redis://127.0.0.1:6379/0"
INGEST_LIMIT = 20  # per key and minute, across the replicas when Redis holds the counts
# Fresh keys: fresh Redis buckets for this run.
KEY = "replicas-" + secrets.token_hex(8)
LIMITED_KEY = "limited-" + secrets.token_hex(8)


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


class Pair:
    """The two replicas, their scheduled export's directory."""

    def __init__(self, replicas: list[Replica], exports: Path) -> None:
        self.a, self.b = replicas
        self.exports = exports


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two replicas on a new schema, a scheduled export every second, ingest limits kept in Redis."""
    from pg_support import PG_SKIP

    if PG_SKIP:
        pytest.skip(PG_SKIP)
    tmp = tmp_path_factory.mktemp("replicas")
    exports = tmp / "exports"
    schedule = {"name": "replicated", "format": "ndjson", "every": 1, "output_dir": str(exports), "keep": 1000}
    inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in schedule.items())
    config = tmp / "telemetry.toml"
    config.write_text(f"[telemetry.exports]\nschedules = [{{{inline}}}]\n\n"
                      f"[telemetry.api.rate_limit]\ningest_per_window = {INGEST_LIMIT}\nwindow_s = 60\n")
    url = new_schema_url()
    env = {"TELEMETRY_CONFIG": str(config), "TELEMETRY_REDIS_URL": REDIS_URL}
    replicas = [Replica(url, tmp, env=env, keys=(LIMITED_KEY,), key=KEY) for _ in range(2)]  # at once, on a new schema
    try:
        for replica in replicas:
            replica.wait_up()
        yield Pair(replicas, exports)
    finally:
        for replica in replicas:
            replica.stop()
        drop_schema(url)


def _ws_url(replica: Replica, query: str) -> str:
    return replica.url.replace("http://", "ws://") + "/ws?" + query


def _events_until(ws: Any, last_id: str) -> list[dict[str, Any]]:
    """Read event messages until the one with event_id `last_id` (30 s at most per frame)."""
    seen: list[dict[str, Any]] = []
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message["type"] != "event":
            continue
        seen.append(message["event"])
        if message["event"]["event_id"] == last_id:
            return seen


def test_a_websocket_on_one_replica_sees_events_posted_to_the_other_once(pair: Pair) -> None:
    with connect(_ws_url(pair.a, "channel=session:live"), additional_headers=pair.a.headers) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "connected"
        start = {"event_type": "start", "session_id": "live", "agent_type": "claude", "mode": "code",
                 "prompt": "go", "event_id": "live-start"}
        posted = time.monotonic()
        assert pair.b.post(start).status_code == 200  # to the *other* replica
        first = _events_until(ws, "live-start")
        print(f"B -> WebSocket on A: {1000 * (time.monotonic() - posted):.0f} ms")
        # Both replicas at once, then a last event: everything before it arrives, each event once.
        for i in range(5):
            for replica in (pair.a, pair.b):
                chunk = {"event_type": "stream", "session_id": "live", "stream_data": f"{replica.port}.{i}",
                         "event_id": f"live-{replica.port}-{i}"}
                assert replica.post(chunk).status_code == 200
        end = {"event_type": "end", "session_id": "live", "event_id": "live-end"}
        assert pair.b.post(end).status_code == 200
        rest = _events_until(ws, "live-end")
    ids = [e["event_id"] for e in first + rest]
    assert sorted(ids) == sorted(["live-start", "live-end"] + [f"live-{r.port}-{i}" for r in (pair.a, pair.b)
                                                                for i in range(5)])
    assert [e["event_type"] for e in first] == ["start"]
    assert first[0]["category"] == "claude" and first[0]["session_id"] == "live"


@pytest.mark.skipif(not _redis_up(), reason="Redis is not running on 127.0.0.1:6379 (start redis-server)")
def test_the_ingest_budget_is_shared_by_the_replicas_through_redis(pair: Pair) -> None:
    headers = {"X-API-Key": LIMITED_KEY}
    codes = []
    for i in range(INGEST_LIMIT + 6):
        replica = (pair.a, pair.b)[i % 2]  # alternating, as a load balancer would
        event = {"event_type": "custom", "category": "limits", "event_id": f"limited-{i}"}
        codes.append(httpx.post(replica.url + "/api/events", json=event, headers=headers, timeout=30).status_code)
    # Counted per replica, each would have accepted every one of these (INGEST_LIMIT each).
    assert codes[:INGEST_LIMIT] == [200] * INGEST_LIMIT
    assert codes[INGEST_LIMIT:] == [429] * 6


def _stamps(directory: Path) -> list[int]:
    """The window ends (ms) of the scheduled export's files, oldest first."""
    out = []
    for path in directory.glob("replicated-*.ndjson"):
        seconds, millis = path.name[len("replicated-"):-len(".ndjson")].rstrip("Z").split(".")
        when = datetime.strptime(seconds, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        out.append(int(when.timestamp()) * 1000 + int(millis))
    return sorted(out)


def test_a_scheduled_export_runs_once_per_period_and_survives_its_holder(pair: Pair) -> None:
    replicas = [pair.a, pair.b]
    # Both replicas have met the job: one runs it, the other stands by.
    statuses = wait_for(lambda: (s := [r.jobs()[JOB] for r in replicas]) and all("leader" in j for j in s) and s,
                        "both replicas to meet the export job")
    leaders = [i for i, job in enumerate(statuses) if job["leader"]]
    assert len(leaders) == 1, statuses
    holder, standby = replicas[leaders[0]], replicas[1 - leaders[0]]
    wait_for(lambda: len(_stamps(pair.exports)) >= 4 and standby.jobs()[JOB]["skipped"] >= 3, "four periods")
    assert standby.jobs()[JOB]["runs"] == 0
    stamps = _stamps(pair.exports)
    # One scheduler runs a job at least one interval after its previous run ended; two replicas
    # running it would put two files within one period.
    assert min(b - a for a, b in pairwise(stamps)) >= 1000, stamps

    holder.kill()  # no goodbye: PostgreSQL ends its session and frees the lease
    before = len(_stamps(pair.exports))
    wait_for(lambda: standby.jobs()[JOB]["runs"] >= 2, "the standby to take the job over")
    assert standby.jobs()[JOB]["leader"] is True
    assert len(_stamps(pair.exports)) > before
