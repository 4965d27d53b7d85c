"""The OTLP receiver: the official OpenTelemetry SDK exporters as real clients, and bad input answered clearly."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from vibekit_telemetry import Telemetry, TelemetryEvent
from vibekit_telemetry.otlp.encode import encode_traces, encode_traces_json
from vibekit_telemetry.otlp.grpc_server import OtlpGrpcServer
from vibekit_telemetry.server import ServerHandle, start_api_server

Receiver = tuple[Telemetry, ServerHandle]


def _run_agent(exporter: SpanExporter) -> str:
    """What an OpenTelemetry-instrumented agent does: a root agent span, an LLM call, a failing tool."""
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot", "service.version": "1.4",
                                                        "deployment.environment": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent support", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.system": "openai",
            "session.id": "conv-42"}) as root:
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 57, "gen_ai.usage.output_tokens": 18,
                "gen_ai.prompt.0.content": "Where is my order?",
                "gen_ai.completion.0.content": "It ships tomorrow."}):
            pass
        with tracer.start_as_current_span("lookup_order") as tool:
            try:
                raise KeyError("order 17")
            except KeyError as exc:
                tool.record_exception(exc)
                tool.set_status(Status(StatusCode.ERROR, "order not found"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush()
    provider.shutdown()
    return trace_id


def _check_agent_session(telemetry: Telemetry, trace_id: str) -> None:
    session = telemetry.get_session(trace_id, with_events=True)
    assert session is not None and session.status == "completed" and session.category == "openai"
    events = session.events or []
    by_type = [e.event_type for e in events]
    assert by_type.count("start") == 1 and by_type.count("end") == 1 and by_type.count("error") == 1
    start = next(e for e in events if e.event_type == "start")
    assert start.metadata is not None
    assert start.metadata["conversation_id"] == "conv-42"  # the agent's own session attribute, kept
    llm = next(e for e in events if e.event_type == "custom" and e.action == "chat")
    assert llm.label == "Where is my order?" and llm.stream_data == "It ships tomorrow."
    assert llm.metadata is not None and llm.metadata["model"] == "gpt-4o"
    assert llm.metadata["input_tokens"] == 57 and llm.metadata["output_tokens"] == 18
    otel = llm.metadata["otel"]["attributes"]
    assert otel["gen_ai.request.model"] == "gpt-4o" and "gen_ai.prompt.0.content" not in otel  # kept once, as label
    assert llm.service_name == "support-bot" and llm.service_version == "1.4"
    assert llm.context == {"environment": "prod"}
    tool = next(e for e in events if e.event_type == "custom" and e.label == "lookup_order")
    assert tool.metadata is not None and tool.metadata["otel"]["name"] == "lookup_order"
    error = next(e for e in events if e.event_type == "error")
    assert error.metadata is not None and error.metadata["error"]["type"] == "KeyError"


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_the_official_sdk_http_exporter_sends_sessions(receiver: Receiver, compression: Compression) -> None:
    telemetry, server = receiver
    trace_id = _run_agent(HttpSpanExporter(endpoint=f"{server.url}/v1/traces", compression=compression))
    # Every Export call was answered only after the commit: the session is there without a flush.
    _check_agent_session(telemetry, trace_id)


def test_the_official_sdk_grpc_exporter_sends_sessions(make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry("grpc.db")
    grpc_server = OtlpGrpcServer(telemetry, port=0).start()
    try:
        trace_id = _run_agent(GrpcSpanExporter(endpoint=grpc_server.endpoint, insecure=True))
    finally:
        grpc_server.stop()
    _check_agent_session(telemetry, trace_id)


def test_a_lone_root_span_is_a_session_named_by_its_trace_id(receiver: Receiver) -> None:
    telemetry, server = receiver
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(HttpSpanExporter(endpoint=f"{server.url}/v1/traces")))
    with provider.get_tracer("t").start_as_current_span("batch job") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    session = telemetry.get_session(trace_id, with_events=True)
    assert session is not None and session.label == "batch job"
    assert [e.event_type for e in session.events or []] == ["start", "end"]


KEY = "otlp-ingest-key-0123456789"


def test_auth_applies_to_otlp_over_http_and_grpc(make_telemetry: Callable[..., Telemetry]) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    from vibekit_telemetry.server.settings import ServerSettings

    telemetry = make_telemetry("auth.db")
    settings = ServerSettings.resolve(auth=True, api_keys=[f"{KEY}:ingest"])
    server = start_api_server(telemetry, port=0, settings=settings)
    grpc_server = OtlpGrpcServer(telemetry, port=0, settings=settings).start()
    request = encode_traces([TelemetryEvent("custom", "probe", timestamp=1_800_000_000_000, event_id="http")])
    try:
        headers = {"Content-Type": "application/x-protobuf"}
        refused = httpx.post(f"{server.url}/v1/traces", content=request.SerializeToString(), headers=headers)
        assert refused.status_code == 401
        ok = httpx.post(f"{server.url}/v1/traces", content=request.SerializeToString(),
                        headers={**headers, "X-API-Key": KEY})
        assert ok.status_code == 200
        with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
            stub = TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            second = encode_traces([TelemetryEvent("custom", "probe", timestamp=1_800_000_000_001,
                                                   event_id="grpc")])
            stub.Export(second, metadata=[("authorization", f"Bearer {KEY}")], timeout=10)
    finally:
        grpc_server.stop()
        server.stop()
    assert [e.event_id for e in telemetry.query(category="probe")] == ["http", "grpc"]


def test_the_processor_chain_runs_on_received_spans(make_telemetry: Callable[..., Telemetry]) -> None:
    class MaskDocuments:
        name = "mask-documents"

        def process(self, event: TelemetryEvent) -> TelemetryEvent:
            if event.label:
                event.label = event.label.replace("invoice", "[document]")
            return event

    telemetry = make_telemetry("chain.db", processors=[MaskDocuments()])
    server = start_api_server(telemetry, port=0)
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(HttpSpanExporter(endpoint=f"{server.url}/v1/traces")))
        tracer = provider.get_tracer("t")
        prompt = {"gen_ai.prompt.0.content": "mail ann@example.com the invoice"}
        with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("llm", attributes=prompt):
            pass
        provider.shutdown()
    finally:
        server.stop()
    labels = [e.label for e in telemetry.query(session_id=format(root.get_span_context().trace_id, "032x"))]
    # Your step ran, and so did the server's default redaction (issue 12): no address is stored.
    assert "mail [REDACTED_EMAIL] the [document]" in labels
    assert not any("ann@example.com" in (x or "") for x in labels)


def test_json_bodies_and_partial_success(receiver: Receiver) -> None:
    telemetry, server = receiver
    good = TelemetryEvent("custom", "probe", timestamp=1_800_000_000_000, event_id="good")
    document = encode_traces_json([good])
    bad_span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "no times"}  # start 0: not a real span
    document["resourceSpans"][0]["scopeSpans"][0]["spans"].append(bad_span)
    answer = httpx.post(f"{server.url}/v1/traces", json=document)
    assert answer.status_code == 200
    partial = answer.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "cdcdcdcdcdcdcdcd" in partial["errorMessage"]
    assert [e.event_id for e in telemetry.query(category="probe")] == ["good"]
    # protobuf answers in protobuf, and an all-good request has no partial success
    raw = encode_traces([TelemetryEvent("custom", "probe", timestamp=1_800_000_000_001, event_id="pb")])
    answer = httpx.post(f"{server.url}/v1/traces", content=gzip.compress(raw.SerializeToString()),
                        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse()
    response.ParseFromString(answer.content)
    assert not response.HasField("partial_success")


@pytest.fixture
def post(receiver: Receiver) -> Iterator[Callable[..., httpx.Response]]:
    """POST a raw body to /v1/traces."""
    _, server = receiver
    with httpx.Client(base_url=server.url, timeout=30) as client:
        def send(body: bytes, content_type: str = "application/x-protobuf", **headers: str) -> httpx.Response:
            return client.post("/v1/traces", content=body, headers={"Content-Type": content_type, **headers})
        yield send


def _valid() -> bytes:
    event = TelemetryEvent("custom", "probe", timestamp=1_800_000_000_000, event_id="v")
    return encode_traces([event]).SerializeToString()


@pytest.mark.parametrize(("body", "content_type", "headers", "status", "says"), [
    (b"\xff\xff\xff\xff not protobuf", "application/x-protobuf", {}, 400, "not a protobuf"),
    (b"{not json", "application/json", {}, 400, "malformed JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json", {}, 400, "deep"),
    (b"\x0a\x02\x0a\x00" * 5 + b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", {}, 400, "not a protobuf"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", {}, 400,
     "traceId"),
    (b"", "application/x-protobuf", {}, 400, "empty body"),
    (b"hello", "text/plain", {}, 415, "application/x-protobuf"),
    (b"hello", "application/xml", {}, 415, ""),
    (b"x", "application/x-protobuf", {"Content-Encoding": "br"}, 415, "gzip"),
    (gzip.compress(b"0123456789" * 100)[:-12], "application/x-protobuf", {"Content-Encoding": "gzip"}, 400,
     "truncated"),
    (b"not gzip at all", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, "gzip"),
])
def test_bad_requests_get_a_clear_4xx(post: Callable[..., httpx.Response], body: bytes, content_type: str,
                                      headers: dict[str, str], status: int, says: str) -> None:
    answer = post(body, content_type, **headers)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_a_50_mb_body_is_refused_and_so_is_a_gzip_bomb(post: Callable[..., httpx.Response],
                                                       receiver: Receiver) -> None:
    answer = post(b"\x00" * (50 * 1024 * 1024))
    assert answer.status_code == 413 and "limit" in answer.json()["message"]
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))  # 64 KB on the wire, 64 MB inflated
    answer = post(bomb, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "inflates" in answer.json()["message"]
    assert post(_valid()).status_code == 200  # the server is fine afterwards
    telemetry, _ = receiver
    assert [e.event_id for e in telemetry.query(category="probe")] == ["v"]


def test_the_request_body_types_are_in_the_openapi_document(receiver: Receiver) -> None:
    _, server = receiver
    spec = httpx.get(f"{server.url}/openapi.json").json()
    content = spec["paths"]["/v1/traces"]["post"]["requestBody"]["content"]
    assert {"application/x-protobuf", "application/json"} <= set(content)
    assert json.dumps(ExportTraceServiceRequest().SerializeToString().hex()) == '""'
