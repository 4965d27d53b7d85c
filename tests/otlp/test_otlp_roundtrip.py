"""Round trip: events exported as OTLP by one Telemetry and received by another's server come back the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.events import PUBLIC_FIELDS, TelemetryEvent
from vibekit_telemetry.otlp.grpc_server import OtlpGrpcServer
from vibekit_telemetry.server import start_api_server


def _record(telemetry: Telemetry) -> None:
    """Sessions with every kind of event, metadata and context, plus an event outside any session."""
    ok = telemetry.track_start("claude", "chat", "refactor the parser", sandbox_id="sb-1",
                               repo_url="https://git.example/p.git", metadata={"model": "claude-opus", "n": [1, 2]})
    telemetry.track_stream(ok, "step one", metadata={"input_tokens": 10})
    telemetry.track_stream(ok, "step two ✓ ünïcode")
    telemetry.track({"event_type": "custom", "category": "claude", "session_id": ok, "action": "tool",
                     "label": "ran tests", "value": 3.5, "duration": 12.25,
                     "metadata": {"nested": {"deep": True, "none": None}}})
    telemetry.track_end(ok, "completed", duration=4200)
    bad = telemetry.track_start("gemini", "edit", "fix CI", context={"user_id": "u-7", "environment": "dev"})
    try:
        raise RuntimeError("disk full")
    except RuntimeError as exc:
        telemetry.track_error(bad, exc)
    telemetry.track_end(bad, "error")
    telemetry.track({"event_type": "custom", "category": "cron", "label": "nightly", "value": 1})


def _events(telemetry: Telemetry) -> dict[str, dict[str, Any]]:
    return {e.event_id or "": {k: v for k, v in e.to_dict().items() if k in PUBLIC_FIELDS}
            for e in telemetry.query(limit=1000)}


@pytest.mark.parametrize(("protocol", "stream_as"), [("http/protobuf", "events"), ("http/json", "spans"),
                                                      ("grpc", "events")])
def test_exported_events_come_back_the_same(make_telemetry: Callable[..., Telemetry], protocol: str,
                                            stream_as: str) -> None:
    # An exact round trip: the receiving server's default redaction (issue 12) is turned off here.
    target = make_telemetry("target.db", security={"pii": {"enabled": False}})
    server = start_api_server(target, port=0)
    grpc_server = OtlpGrpcServer(target, port=0).start() if protocol == "grpc" else None
    endpoint = grpc_server.endpoint if grpc_server else server.url
    source = make_telemetry("source.db", storage=[
        {"type": "sqlite"},
        {"type": "otlp", "options": {"endpoint": endpoint, "protocol": protocol, "stream_as": stream_as,
                                     "start_at": "beginning"}}])
    try:
        _record(source)
        assert source.flush()
        assert source.runtime is not None and source.runtime.exporters is not None
        assert source.runtime.exporters.shutdown(timeout=10.0)  # everything committed was delivered
    finally:
        if grpc_server:
            grpc_server.stop()
        server.stop()
    sent, received = _events(source), _events(target)
    assert len(sent) == 9
    assert received == sent
    sessions = {s.id: s for s in target.get_sessions()}
    original = {s.id: s for s in source.get_sessions()}
    assert {k: (s.status, s.event_count, s.start_time, s.end_time) for k, s in sessions.items()} == \
        {k: (s.status, s.event_count, s.start_time, s.end_time) for k, s in original.items()}


def test_an_event_type_the_receiver_refuses_is_rejected_alone(make_telemetry: Callable[..., Telemetry]) -> None:
    import httpx

    from vibekit_telemetry.otlp.encode import encode_traces_json

    target = make_telemetry("strict.db")
    server = start_api_server(target, port=0)
    try:
        good = TelemetryEvent("custom", "probe", timestamp=1_800_000_000_000, event_id="good")
        wrong = TelemetryEvent("custom", "probe", timestamp=1_800_000_000_000, event_id="wrong")
        wrong.event_type = "bogus"  # as a tampered or newer exporter might send
        answer = httpx.post(f"{server.url}/v1/traces", json=encode_traces_json([good, wrong]))
    finally:
        server.stop()
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert "event_type" in answer.json()["partialSuccess"]["errorMessage"]
    assert [e.event_id for e in target.query(category="probe")] == ["good"]
