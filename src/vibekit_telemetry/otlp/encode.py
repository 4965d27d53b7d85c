"""Events to OTLP: each session one trace, its root span from start to end, events as span events or child spans.

Built on the official protobuf definitions (opentelemetry-proto). `encode_traces` returns the
`ExportTraceServiceRequest` message (http/protobuf and gRPC send it as is); `encode_traces_json`
returns its OTLP/JSON form (hex ids, integer enums), the body of http/json and of
`telemetry export --format otlp`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from .. import __version__
from ..events import TelemetryEvent
from . import semconv as sc

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

StreamAs = Literal["events", "spans"]
NS_PER_MS: Final = 1_000_000
_ID_FIELDS: Final = frozenset({"traceId", "spanId", "parentSpanId"})


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    """How events become spans: stream chunks and custom events as span events or child spans; resource."""

    stream_as: StreamAs = "events"
    resource_attributes: Mapping[str, Any] = field(default_factory=dict)
    service_name: str | None = None  # used when an event names none


def encode_traces(events: Iterable[TelemetryEvent], options: EncodeOptions | None = None
                  ) -> ExportTraceServiceRequest:
    """Return the ExportTraceServiceRequest for these events: one trace per session, grouped by resource."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    opts = options or EncodeOptions()
    groups: dict[str, list[TelemetryEvent]] = {}
    for event in events:
        # An event outside any session is a trace of its own, keyed by its id.
        key = f"s:{event.session_id}" if event.session_id else f"e:{event.event_id}"
        groups.setdefault(key, []).append(event)
    by_resource: dict[tuple[tuple[str, Any], ...], list[Span]] = {}
    for group in groups.values():
        group.sort(key=lambda e: (e.timestamp, _TYPE_ORDER.get(e.event_type, 2), e.event_id or ""))
        resource = _resource_of(group, opts)
        by_resource.setdefault(tuple(sorted(resource.items())), []).extend(_session_spans(group, opts))
    request = ExportTraceServiceRequest()
    for resource_key, spans in by_resource.items():
        scope_spans = ScopeSpans(spans=spans)
        scope_spans.scope.name = sc.SCOPE_NAME
        scope_spans.scope.version = __version__
        described = Resource()
        _fill(described.attributes, dict(resource_key))
        request.resource_spans.append(ResourceSpans(resource=described, scope_spans=[scope_spans]))
    return request


def encode_traces_json(events: Iterable[TelemetryEvent], options: EncodeOptions | None = None) -> dict[str, Any]:
    """Return the OTLP/JSON ExportTraceServiceRequest for these events (sessions as traces)."""
    return request_to_json(encode_traces(events, options))


def request_to_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP/JSON form of a request: protobuf's JSON mapping with hex trace/span ids and integer enums."""
    from google.protobuf.json_format import MessageToDict

    document: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    _ids_to_hex(document)
    return document


def _ids_to_hex(node: Any) -> None:
    # Protobuf's JSON mapping writes bytes as base64; OTLP/JSON requires hex for trace and span ids.
    import base64

    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _ids_to_hex(value)
    elif isinstance(node, list):
        for item in node:
            _ids_to_hex(item)


_TYPE_ORDER: Final = {"start": 0, "stream": 1, "custom": 1, "error": 2, "end": 3}


def _resource_of(group: list[TelemetryEvent], opts: EncodeOptions) -> dict[str, Any]:
    first = group[0]
    service = next((e.service_name for e in group if e.service_name), None)
    version = next((e.service_version for e in group if e.service_version), None)
    environment = next((e.context.get("environment") for e in group
                        if e.context and isinstance(e.context.get("environment"), str)), None)
    out: dict[str, Any] = {"service.name": opts.service_name or sc.DEFAULT_SERVICE}
    out.update({k: v for k, v in opts.resource_attributes.items() if _scalar(v)})
    if service:
        out["service.name"] = service
    if version:
        out["service.version"] = version
    if environment:
        out["deployment.environment"] = environment
    del first
    return out


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float)


def _session_spans(group: list[TelemetryEvent], opts: EncodeOptions) -> list[Span]:
    """The root span of one session (or lone event) and, with stream_as="spans", its child spans."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    first = group[0]
    session_key = first.session_id or f"event:{first.event_id}"
    tid, root_id = sc.trace_id(session_key), sc.root_span_id(session_key)
    category = next((e.category for e in group if e.category), None) or "unknown"
    closing = next((e for e in reversed(group) if e.event_type == "end"), None)
    failed = next((e for e in reversed(group) if e.event_type == "error"), None)
    start_ns = group[0].timestamp * NS_PER_MS
    end_ns = (closing or group[-1]).timestamp * NS_PER_MS
    root = Span(trace_id=tid, span_id=root_id, kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start_ns, end_time_unix_nano=max(end_ns, start_ns))
    lone = first.session_id is None
    root.name = (first.label or first.action or "custom event") if lone else f"invoke_agent {category}"
    status = (closing.metadata or {}).get("status") if closing else None
    if status == "completed":
        root.status.code = Status.STATUS_CODE_OK
    elif status in ("error", "cancelled") or (failed is not None and closing is None):
        root.status.code = Status.STATUS_CODE_ERROR
        root.status.message = (failed.label if failed and failed.label else str(status or "error"))
    _fill(root.attributes, _root_attributes(group, category, status))
    children: list[Span] = []
    for event in group:
        if opts.stream_as == "spans" and event.event_type in ("stream", "custom") and not lone:
            children.append(_child_span(event, tid, root_id))
        else:
            _add_span_event(root, event)
    return [root, *children]


def _root_attributes(group: list[TelemetryEvent], category: str, status: Any) -> dict[str, Any]:
    first = group[0]
    start = next((e for e in group if e.event_type == "start"), first)
    out: dict[str, Any] = {sc.GEN_AI_OPERATION: "invoke_agent", sc.GEN_AI_SYSTEM: category,
                           sc.GEN_AI_AGENT: category}
    if first.session_id:
        out.update({sc.SESSION_ID: first.session_id, sc.GEN_AI_CONVERSATION: first.session_id,
                    "vibekit.session_id": first.session_id})
    model = _first_meta(group, sc.MODEL_KEYS)
    if isinstance(model, str):
        out[sc.GEN_AI_MODEL] = model
    for name, keys in ((sc.GEN_AI_INPUT_TOKENS, sc.INPUT_TOKEN_KEYS), (sc.GEN_AI_OUTPUT_TOKENS, sc.OUTPUT_TOKEN_KEYS)):
        total = _sum_meta(group, keys)
        if total is not None:
            out[name] = total
    for name in ("action", "sandbox_id", "repo_url"):
        value = getattr(start, name)
        if value is not None:
            out[f"vibekit.{name}"] = value
    if status is not None:
        out["vibekit.status"] = str(status)
    out["vibekit.event_count"] = len(group)
    return out


def _first_meta(group: list[TelemetryEvent], keys: tuple[str, ...]) -> Any:
    for event in group:
        for key in keys:
            if event.metadata and event.metadata.get(key) is not None:
                return event.metadata[key]
    return None


def _sum_meta(group: list[TelemetryEvent], keys: tuple[str, ...]) -> int | None:
    total, seen = 0, False
    for event in group:
        for key in keys:
            value = (event.metadata or {}).get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                total, seen = total + value, True
                break
    return total if seen else None


def event_attributes(event: TelemetryEvent) -> dict[str, Any]:
    """The vibekit.* attributes that restore an event exactly (its fields, metadata and context as JSON)."""
    out: dict[str, Any] = {sc.TIMESTAMP_MS: event.timestamp}
    for name in sc.EVENT_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out[sc.PREFIX + name] = value
    for name in sc.JSON_FIELDS:
        value = getattr(event, name)
        if value is not None:
            out[sc.PREFIX + name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return out


def _add_span_event(span: Span, event: TelemetryEvent) -> None:
    attributes = event_attributes(event)
    if event.event_type == "error":
        name = "exception"
        attributes.update(_exception_attributes(event))
    else:
        name = f"vibekit.{event.event_type}"
    # add() builds in place: appending a finished message would copy it (the costly part of encoding).
    added = span.events.add(time_unix_nano=event.timestamp * NS_PER_MS, name=name)
    _fill(added.attributes, attributes)


def _exception_attributes(event: TelemetryEvent) -> dict[str, Any]:
    meta = event.metadata or {}
    found = meta.get("error")
    error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    out: dict[str, Any] = {
        "exception.type": str(error.get("type") or meta.get("error_type") or "Error"),
        "exception.message": str(error.get("message") or event.label or ""),
    }
    stack = error.get("stack") or error.get("stacktrace") or meta.get("stack") or meta.get("stacktrace")
    if isinstance(stack, str):
        out["exception.stacktrace"] = stack
    return out


def _child_span(event: TelemetryEvent, tid: bytes, parent: bytes) -> Span:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    end_ns = event.timestamp * NS_PER_MS
    start_ns = end_ns - int((event.duration or 0) * NS_PER_MS)
    span = Span(trace_id=tid, span_id=sc.event_span_id(event.event_id or f"{event.timestamp}"),
                parent_span_id=parent, kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=max(start_ns, 0),
                end_time_unix_nano=end_ns)
    span.name = "gen_ai.content.chunk" if event.event_type == "stream" else (event.label or event.action or "custom")
    _fill(span.attributes, event_attributes(event))
    return span


def _fill(container: Any, values: Mapping[str, Any]) -> None:
    """Add OTLP KeyValue attributes to a repeated field, in place."""
    for key, value in values.items():
        if isinstance(value, bool):
            container.add(key=key, value={"bool_value": value})
        elif isinstance(value, int):
            container.add(key=key, value={"int_value": value})
        elif isinstance(value, float):
            container.add(key=key, value={"double_value": value})
        else:
            container.add(key=key, value={"string_value": str(value)})
