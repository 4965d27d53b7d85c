"""Exporters wired into Telemetry: configured in `storage`, fed by the writer's commits, never slowing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _exporter_helpers import Receiver

from vibekit_telemetry import BaseStorageProvider, BatchResult, Telemetry
from vibekit_telemetry.exporters.backoff import Backoff
from vibekit_telemetry.exporters.breaker import CircuitBreaker


def test_webhook_configured_in_storage_gets_every_event_once_after_an_outage(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.start()
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), stream_flush_interval_ms=20, storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": receiver.url, "start_at": "beginning", "retry_base_s": 0.05,
                                        "retry_max_s": 0.5, "open_timeout_s": 0.5, "poll_interval_s": 0.1}},
    ])
    try:
        sid = telemetry.track_start("claude", "code", "before the outage")
        assert telemetry.flush(10)
        receiver.stop()  # the destination goes away while the app keeps tracking
        started = time.monotonic()
        for i in range(5_000):
            telemetry.track_stream(sid, f"chunk {i}")
        assert telemetry.flush(10)  # the store commits at full speed while the webhook is down
        while_down = time.monotonic() - started
        time.sleep(2)
        (status,) = telemetry.get_health_status()["exporters"]
        assert status["lag"] > 0 and status["failures"] > 0
        receiver.start()
        telemetry.track_end(sid, "completed")
        assert telemetry.flush(10)
        deadline = time.monotonic() + 30
        while len(set(receiver.ids)) < 5_002 and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = {e.event_id for e in telemetry.query(session_id=sid, limit=10_000)}
        assert set(receiver.ids) == stored and len(stored) == 5_002
        assert len(receiver.ids) == len(stored)  # nothing delivered twice
        assert while_down < 10
        (status,) = telemetry.get_health_status()["exporters"]
        assert status["lag"] == 0
    finally:
        telemetry.shutdown()
        receiver.stop()


def test_a_second_store_follows_the_primary_and_a_failing_one_never_blocks_it(tmp_path: Path) -> None:
    class Flaky(BaseStorageProvider):
        name = "flaky"

        def __init__(self) -> None:
            self.ids: list[str | None] = []
            self.fail = True

        def store_batch(self, events: Any) -> BatchResult:
            if self.fail:
                raise ConnectionError("remote store down")
            self.ids.extend(e.event_id for e in events)
            return BatchResult(stored=len(events))

    flaky = Flaky()
    telemetry = Telemetry(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}}, flaky],
                          stream_flush_interval_ms=20)
    worker = telemetry.runtime.exporters.workers[0]  # type: ignore[union-attr]
    worker.backoff, worker.breaker = Backoff(0.05, 0.2), CircuitBreaker(5, 0.2)  # retry fast in a test
    try:
        sid = telemetry.track_start("claude", "code", "p")
        for i in range(200):
            telemetry.track_stream(sid, f"c{i}")
        assert telemetry.flush(10)  # the primary (SQLite) has everything, whatever the second store does
        assert telemetry.get_session(sid).event_count == 201  # type: ignore[union-attr]
        flaky.fail = False
        deadline = time.monotonic() + 20
        while len(flaky.ids) < 201 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(flaky.ids) == sorted(e.event_id for e in telemetry.query(limit=1000))  # type: ignore[type-var]
    finally:
        telemetry.shutdown()


def test_exporter_lag_and_breaker_state_are_in_prometheus_metrics(tmp_path: Path) -> None:
    import httpx

    receiver = Receiver()  # never started: the destination is down
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": receiver.url, "name": "down-hook", "start_at": "beginning",
                                        "retry_base_s": 0.05, "retry_max_s": 0.1, "failure_threshold": 2}},
    ], stream_flush_interval_ms=20)
    server = telemetry.start_api_server(port=0)
    try:
        telemetry.track_batch([{"event_type": "custom", "category": "c"}] * 10)
        assert telemetry.flush(10)
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(server.url + "/metrics").text
            if 'telemetry_exporter_breaker_state{exporter="down-hook",state="open"} 1.0' in text:
                break
            time.sleep(0.1)
        assert 'telemetry_exporter_breaker_state{exporter="down-hook",state="open"} 1.0' in text
        assert 'telemetry_exporter_lag_events{exporter="down-hook"} 10.0' in text
    finally:
        server.stop()
        telemetry.shutdown(timeout=1)
