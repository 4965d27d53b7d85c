"""The caller's fast path: what track() and track_stream() leave to the writer thread still happens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.processing import DropNotice

MakeTelemetry = Callable[..., Telemetry]


def test_dict_is_snapshotted_at_track_time(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    meta: dict[str, Any] = {"n": 1}
    event = {"eventType": "custom", "agentType": "ui", "mode": "click", "metadata": meta}
    assert telemetry.track(event)
    meta["n"] = 2  # the caller reuses its dicts: what was tracked must not change
    event["mode"] = "changed"
    telemetry.flush(10)
    [stored] = telemetry.query(event_type="custom")
    assert (stored.category, stored.action, stored.metadata) == ("ui", "click", {"n": 1})
    assert stored.timestamp > 0 and stored.event_id is not None


def test_stream_fast_path_fills_session_fields(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    telemetry.track({"event_type": "start", "session_id": "s-1", "category": "claude", "action": "code"})
    assert telemetry.track_stream("s-1", "chunk")  # queued before the start was written
    assert telemetry.track({"event_type": "end", "session_id": "s-1"})
    telemetry.flush(10)
    [chunk] = telemetry.query(event_type="stream")
    assert (chunk.category, chunk.action, chunk.duration) == ("claude", "code", None)
    assert chunk.timestamp > 0
    session = telemetry.get_session("s-1")
    assert session is not None and session.status == "completed" and session.stream_count == 1


def test_bad_dict_is_counted_logged_and_announced_by_the_writer(make_telemetry: MakeTelemetry,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry()
    errors: list[Any] = []
    telemetry.on("error", lambda exc, event: errors.append(exc))
    telemetry.track({"event_type": "custom", "category": "x", "nonsense": 1})
    telemetry.track({"event_type": "custom", "category": "x", "metadata": {1: "int key"}})
    telemetry.flush(10)
    assert [e.field for e in errors] == ["nonsense", "metadata.1"]
    assert telemetry.get_health_status()["dropped"]["invalid"] == 2
    assert "telemetry event dropped" in caplog.text
    assert telemetry.query() == []


def test_dropped_handler_gets_the_event_when_the_queue_is_full(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(max_queue_size=1, backpressure="drop_newest",
                               stream_flush_interval_ms=60_000, stream_batch_size=1000)
    dropped: list[Any] = []
    telemetry.on("dropped", dropped.append)
    results = [telemetry.track({"event_type": "custom", "category": "x", "value": i}) for i in range(5)]
    assert results.count(False) >= 1
    # Listeners learn the ids, type and reason, never the raw content (redaction has not run on it).
    assert all(isinstance(e, DropNotice) and e.event_type == "custom" and e.reason for e in dropped)
    assert len(dropped) == results.count(False)
