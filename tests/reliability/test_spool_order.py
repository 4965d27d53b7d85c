"""Spooled events reach a remote primary in the order they were tracked, before anything tracked later."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import TransientStoreError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.store.base import BaseStorageProvider, BatchResult


class Remote(BaseStorageProvider):
    """A remote primary of the user's (a custom provider): refuses connections while `down` is set."""

    name = "remote-api"

    def __init__(self) -> None:
        self.down = threading.Event()
        self.received: list[str] = []
        self.ids: set[str] = set()

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult:
        if self.down.is_set():
            raise TransientStoreError("remote-api: connection refused")
        fresh = [e for e in events if e.event_id not in self.ids]  # idempotent by event_id, like the SQL stores
        self.ids.update(e.event_id or "" for e in fresh)
        self.received.extend(e.label or "" for e in fresh)
        return BatchResult(stored=len(fresh), duplicates=len(events) - len(fresh))


def test_replay_keeps_tracking_order(tmp_path: Path) -> None:
    remote = Remote()
    telemetry = Telemetry(storage=[remote], stream_flush_interval_ms=10,
                          reliability={"circuitBreaker": {"threshold": 1, "timeout": 200},
                                       "retry": {"maxAttempts": 0}, "spoolPath": str(tmp_path / "spool.db")})
    try:
        telemetry.track({"event_type": "custom", "category": "c", "label": "0"})
        assert telemetry.flush(10)
        remote.down.set()
        for i in range(1, 301):  # many small batches while it is down
            telemetry.track({"event_type": "custom", "category": "c", "label": str(i)})
            if i % 30 == 0:
                assert telemetry.flush(10)
        assert telemetry.flush(10)
        assert telemetry.get_health_status()["spool"]["depth"] == 300
        with telemetry.start_api_server(port=0) as server:  # the same state in /metrics
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert "telemetry_spool_depth 300.0" in text and "telemetry_healthy 0.0" in text
        opened = [line for line in text.splitlines() if line.startswith("telemetry_primary_breaker_opened ")]
        assert opened and float(opened[0].split()[-1]) >= 1
        remote.down.clear()
        for i in range(301, 311):  # tracked after it came back: must land after the backlog
            telemetry.track({"event_type": "custom", "category": "c", "label": str(i)})
        assert telemetry.flush(10)
        # The breaker lets a probe through after its timeout; the scheduler's replay job drains the rest.
        deadline = time.monotonic() + 30
        while telemetry.get_health_status()["spool"]["depth"] and time.monotonic() < deadline:
            time.sleep(0.1)
        health = telemetry.get_health_status()
    finally:
        telemetry.shutdown()
    assert remote.received == [str(i) for i in range(311)]
    assert health["spool"]["depth"] == 0 and health["dropped_total"] == 0
