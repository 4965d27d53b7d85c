"""The "otlp" exporter: sessions as traces to a real OTLP/HTTP endpoint on loopback, decoded independently."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from _otlp_support import Capture, attrs

from vibekit_telemetry import Telemetry
from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.otlp.exporter import build_otlp, session_trace_id
from vibekit_telemetry.otlp.settings import resolve_target


def _otlp(capture: Capture, **options: Any) -> list[dict[str, Any]]:
    return [{"type": "sqlite"}, {"type": "otlp", "options": {"endpoint": capture.url, "start_at": "beginning",
                                                             "retry_base_s": 0.05, "retry_max_s": 0.2,
                                                             **options}}]


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _agent_session(telemetry: Telemetry, fail: bool = False) -> str:
    sid = telemetry.track_start("claude", "chat", "fix the bug", metadata={"model": "claude-sonnet-4"})
    telemetry.track_stream(sid, "Looking at the code", metadata={"input_tokens": 120, "output_tokens": 30})
    telemetry.track_stream(sid, "Found it", metadata={"output_tokens": 12})
    if fail:
        try:
            raise TimeoutError("tool call timed out")
        except TimeoutError as exc:
            telemetry.track_error(sid, exc)
        telemetry.track_end(sid, "error")
    else:
        telemetry.track_end(sid, "completed")
    return sid


def test_an_ended_session_arrives_as_one_trace_with_genai_attributes(
        capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(storage=_otlp(capture), service_name="my-agent", service_version="2.1.0",
                               environment="staging")
    sid = _agent_session(telemetry)
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 1)
    resource, root = capture.spans()[0]
    assert resource["service.name"] == "my-agent"
    assert resource["service.version"] == "2.1.0"
    assert resource["deployment.environment"] == "staging"
    assert root.trace_id.hex() == session_trace_id(sid)
    assert not root.parent_span_id
    a = attrs(root.attributes)
    assert a["gen_ai.system"] == "claude" and a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.request.model"] == "claude-sonnet-4"
    assert a["gen_ai.usage.input_tokens"] == 120 and a["gen_ai.usage.output_tokens"] == 42
    assert a["session.id"] == sid and a["vibekit.action"] == "chat"
    assert root.status.code == 1  # OK
    events = telemetry.query(session_id=sid)
    assert root.start_time_unix_nano == events[0].timestamp * 1_000_000
    assert root.end_time_unix_nano == events[-1].timestamp * 1_000_000
    names = [e.name for e in root.events]
    assert names == ["vibekit.start", "vibekit.stream", "vibekit.stream", "vibekit.end"]
    chunk = attrs(root.events[1].attributes)
    assert chunk["vibekit.stream_data"] == "Looking at the code"
    assert json.loads(chunk["vibekit.metadata"]) == {"input_tokens": 120, "output_tokens": 30}
    assert capture.headers[0]["Content-Encoding"] == "gzip"
    assert capture.headers[0]["Content-Type"] == "application/x-protobuf"


def test_an_error_becomes_an_exception_event_and_an_error_status(
        capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(storage=_otlp(capture, protocol="http/json", compression="none"))
    _agent_session(telemetry, fail=True)
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 1)
    _, root = capture.spans()[0]
    assert root.status.code == 2 and "tool call timed out" in root.status.message
    (exception,) = [e for e in root.events if e.name == "exception"]
    a = attrs(exception.attributes)
    assert a["exception.type"] == "TimeoutError" and a["exception.message"] == "tool call timed out"
    assert capture.headers[0]["Content-Type"] == "application/json"
    assert "Content-Encoding" not in capture.headers[0]


def test_stream_chunks_as_child_spans_when_configured(
        capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(storage=_otlp(capture, stream_as="spans"))
    sid = _agent_session(telemetry)
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 3)
    spans = [span for _, span in capture.spans()]
    root = next(s for s in spans if not s.parent_span_id)
    children = [s for s in spans if s.parent_span_id]
    assert {s.trace_id.hex() for s in spans} == {session_trace_id(sid)}
    assert all(s.parent_span_id == root.span_id for s in children)
    assert [attrs(s.attributes)["vibekit.stream_data"] for s in children] == ["Looking at the code", "Found it"]
    assert [e.name for e in root.events] == ["vibekit.start", "vibekit.end"]


def test_an_open_session_is_not_sent_until_it_ends(capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(storage=_otlp(capture))
    sid = telemetry.track_start("codex", "edit", "rename it")
    telemetry.track_stream(sid, "working")
    done = telemetry.track_start("codex", "edit", "other")
    telemetry.track_end(done, "completed")
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 1)
    assert capture.spans()[0][1].trace_id.hex() == session_trace_id(done)
    telemetry.track_end(sid, "cancelled")
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 2)
    root = capture.spans()[1][1]
    assert root.trace_id.hex() == session_trace_id(sid)
    assert [e.name for e in root.events] == ["vibekit.start", "vibekit.stream", "vibekit.end"]


def test_the_finished_part_of_a_long_open_session_is_sent_early(
        capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(storage=_otlp(capture, partial_after_s=0.2))
    sid = telemetry.track_start("claude", "chat", "long task")
    telemetry.track_stream(sid, "first")
    assert telemetry.flush()
    time.sleep(0.3)
    telemetry.track_stream(sid, "second")  # the next batch finds the session open past partial_after_s
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 2)
    early = [span for _, span in capture.spans()]
    assert all(s.parent_span_id for s in early)  # child spans only: the root waits for the end
    assert [attrs(s.attributes)["vibekit.stream_data"] for s in early] == ["first", "second"]
    telemetry.track_end(sid, "completed")
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 3)
    _, root = capture.spans()[2]
    assert not root.parent_span_id and [e.name for e in root.events] == ["vibekit.start", "vibekit.end"]
    assert {s.parent_span_id for s in early} == {root.span_id}


def test_endpoint_rules_and_standard_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_target({"endpoint": "http://c:4318"}, "f").endpoint == "http://c:4318/v1/traces"
    assert resolve_target({"endpoint": "http://c:4318/v1/traces"}, "f").endpoint == "http://c:4318/v1/traces"
    assert resolve_target({}, "f").endpoint == "http://localhost:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=agents")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    target = resolve_target({}, "f")
    assert target.endpoint == "https://collector.example:4318/v1/traces"
    assert target.headers == {"api-key": "s=cret", "x-team": "agents"} and not target.gzip
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://other.example/custom/path")
    assert resolve_target({}, "f").endpoint == "https://other.example/custom/path"  # the full URL, as is
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    assert resolve_target({}, "f").protocol == "grpc"
    assert resolve_target({"protocol": "http/json", "headers": {"a": "b"}}, "f").headers == {"a": "b"}


@pytest.mark.parametrize(("options", "field", "expected"), [
    ({"protocol": "thrift"}, "storage[1].options.protocol", "http/protobuf"),
    ({"endpoint": "collector:4318"}, "storage[1].options.endpoint", "http://"),
    ({"compression": "zstd"}, "storage[1].options.compression", "gzip"),
    ({"stream_as": "lines"}, "storage[1].options.stream_as", "spans"),
    ({"headers": {"a": 1}}, "storage[1].options.headers", "string values"),
    ({"resource_attributes": {"a": [1]}}, "storage[1].options.resource_attributes", "strings"),
    ({"partial_after_s": 0}, "storage[1].options.partial_after_s", "> 0"),
    ({"endpont": "http://x"}, "storage[1].options.endpont", "endpoint"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str, expected: str) -> None:
    config = load_config(storage=[{"type": "memory"}, {"type": "otlp", "options": options}])
    from vibekit_telemetry.exporters import ExporterSet

    with pytest.raises(ValidationError) as info:
        ExporterSet.from_config(config, None)
    assert info.value.field == field and expected in str(info.value)


def test_the_factory_builds_a_named_exporter() -> None:
    exporter = build_otlp({"endpoint": "http://127.0.0.1:1", "name": "tempo"}, "f")
    assert exporter.name == "tempo" and exporter.target.protocol == "http/protobuf"
    exporter.shutdown()


def test_seed_003_endpoint_sends_sessions_as_traces(capture: Capture,
                                                    make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(isEnabled=True, endpoint=f"{capture.url}/v1/traces")  # used as is
    sid = _agent_session(telemetry)
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 1)
    assert capture.spans()[0][1].trace_id.hex() == session_trace_id(sid)
    off = make_telemetry("off.db", is_enabled=False, endpoint=capture.url)
    assert off.runtime is not None and not off.runtime.exporters


def test_a_collector_answering_503_gets_the_session_once_it_recovers_and_400_is_skipped(
        capture: Capture, make_telemetry: Callable[..., Telemetry]) -> None:
    capture.status = 503
    telemetry = make_telemetry(storage=_otlp(capture, failure_threshold=100))
    first = _agent_session(telemetry)
    assert telemetry.flush()
    exporters = telemetry.runtime.exporters  # type: ignore[union-attr]
    _wait(lambda: exporters.status()[0]["failures"] >= 2)
    capture.status = 200
    _wait(lambda: len(capture.spans()) == 1)
    assert capture.spans()[0][1].trace_id.hex() == session_trace_id(first)
    capture.status = 400  # a refusal: retrying cannot help, the batch is skipped and counted
    _agent_session(telemetry)
    assert telemetry.flush()
    _wait(lambda: exporters.status()[0]["poisoned"] > 0)
    capture.status = 200
    third = _agent_session(telemetry)
    assert telemetry.flush()
    _wait(lambda: len(capture.spans()) == 2)
    assert capture.spans()[1][1].trace_id.hex() == session_trace_id(third)


def test_without_a_readable_store_sessions_are_buffered_until_they_end(capture: Capture) -> None:
    from vibekit_telemetry.events import TelemetryEvent, now_ms
    from vibekit_telemetry.exporters import ExporterSet
    from vibekit_telemetry.store import BaseStorageProvider

    class Archive(BaseStorageProvider):  # write-only: no change log, no reads
        def store_batch(self, events: Any) -> None:
            return None

    exporter = build_otlp({"endpoint": capture.url}, "otlp")
    bus = ExporterSet(Archive(), [exporter])
    bus.start()
    ts = now_ms()
    bus.on_committed([TelemetryEvent("start", "claude", "bus-s", timestamp=ts, event_id="b1"),
                      TelemetryEvent("stream", "claude", "bus-s", stream_data="x", timestamp=ts + 1, event_id="b2")])
    bus.on_committed([TelemetryEvent("end", "claude", "bus-s", timestamp=ts + 2, event_id="b3",
                                     metadata={"status": "completed"})])
    assert bus.shutdown(timeout=5.0)
    (_, root), = capture.spans()
    assert [attrs(e.attributes)["vibekit.event_id"] for e in root.events] == ["b1", "b2", "b3"]
