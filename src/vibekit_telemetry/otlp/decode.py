"""OTLP to events: spans back to sessions and events, for the receiver (POST /v1/traces, gRPC).

Spans our exporter wrote (vibekit.* attributes) give back the exact events. Any other span is mapped
by the conventions agent frameworks use: OpenTelemetry GenAI (`gen_ai.*`), OpenInference
(`llm.*`, `input.value`, `session.id`) and OpenLLMetry (`gen_ai.prompt.0.content` ...). A trace is a
session; a root span gives the session's start and end, any other span a custom event with its attributes in
metadata, an `exception` span event an error event. The session id is the trace id in hex: spans of
one trace arrive in separate requests (children usually first), and only the trace id is on every
one; a `session.id` / `gen_ai.conversation.id` attribute is kept in metadata as `conversation_id`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..events import MIN_TIMESTAMP_MS
from . import semconv as sc

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

_ID_FIELDS: Final = frozenset({"traceId", "spanId", "parentSpanId"})
_SESSION_KEYS: Final = (sc.SESSION_ID, sc.GEN_AI_CONVERSATION, "traceloop.association.properties.session_id",
                        "session_id", "langfuse.session.id")
_SYSTEM_KEYS: Final = (sc.GEN_AI_SYSTEM, "gen_ai.provider.name", "llm.system", "llm.provider", "llm.vendor")
_MODEL_KEYS: Final = (sc.GEN_AI_MODEL, sc.GEN_AI_RESPONSE_MODEL, "llm.model_name", "llm.request.model")
_PROMPT_KEYS: Final = ("gen_ai.prompt.0.content", "gen_ai.prompt", "input.value",
                       "llm.input_messages.0.message.content")
_COMPLETION_KEYS: Final = ("gen_ai.completion.0.content", "gen_ai.completion", "output.value",
                           "llm.output_messages.0.message.content")
_INPUT_TOKEN_KEYS: Final = (sc.GEN_AI_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                            "llm.usage.prompt_tokens")
_OUTPUT_TOKEN_KEYS: Final = (sc.GEN_AI_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens",
                             "llm.token_count.completion", "llm.usage.completion_tokens")
_STATUS_ERROR: Final = 2


class OtlpDecodeError(ValueError):
    """The body is not an OTLP ExportTraceServiceRequest; the message says what was wrong."""


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse an http/protobuf body; OtlpDecodeError when it is not a valid ExportTraceServiceRequest."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise OtlpDecodeError(f"not a protobuf ExportTraceServiceRequest ({exc})") from None
    return request


def parse_json(document: Any) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON document (hex ids); OtlpDecodeError naming the problem when it does not fit."""
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if not isinstance(document, dict):
        raise OtlpDecodeError("expected a JSON object with resourceSpans")
    try:
        converted = _ids_to_base64(document, "")
        return ParseDict(converted, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError) as exc:
        raise OtlpDecodeError(f"not an OTLP/JSON ExportTraceServiceRequest ({exc})") from None


def _ids_to_base64(node: Any, path: str) -> Any:
    # OTLP/JSON writes ids in hex where protobuf's JSON mapping expects base64.
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise ValueError(f"{path}{key}: expected a hex id, got {value[:40]!r}") from None
            else:
                out[key] = _ids_to_base64(value, f"{path}{key}.")
        return out
    if isinstance(node, list):
        return [_ids_to_base64(item, f"{path}{i}.") for i, item in enumerate(node)]
    return node


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP AnyValue (arrays as lists, key-value lists as dicts, bytes as hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return binascii.hexlify(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def attributes(items: Any) -> dict[str, Any]:
    """A dict of OTLP KeyValue attributes."""
    return {kv.key: any_value(kv.value) for kv in items}


@dataclass(slots=True)
class DecodedSpan:
    """The raw events (dicts, for the chain) one span gave, and the span's ids for error reports."""

    trace_id: str
    span_id: str
    events: list[dict[str, Any]]
    error: str | None = None  # set when the span cannot become events (rejected, per OTLP partial success)


def decode_request(request: ExportTraceServiceRequest) -> Iterator[DecodedSpan]:
    """Yield, span by span, the raw events the request describes."""
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield decode_span(span, resource)


def decode_span(span: Span, resource: dict[str, Any]) -> DecodedSpan:
    """The events of one span: exact for spans our exporter wrote, by conventions for any other."""
    trace_hex, span_hex = span.trace_id.hex(), span.span_id.hex()
    out = DecodedSpan(trace_hex, span_hex, [])
    attrs = attributes(span.attributes)
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        out.error = f"span {span_hex or '?'}: traceId must be 16 bytes and spanId 8 bytes"
        return out
    ours = [attributes(e.attributes) for e in span.events]
    if "vibekit.session_id" in attrs or any("vibekit.event_id" in a for a in ours) or "vibekit.event_id" in attrs:
        out.events = [_exact(a) for a in ([attrs] if "vibekit.event_id" in attrs else []) + ours
                      if "vibekit.event_id" in a]
        return out
    start_ms, end_ms = span.start_time_unix_nano // 1_000_000, span.end_time_unix_nano // 1_000_000
    if start_ms < MIN_TIMESTAMP_MS or end_ms < start_ms:
        out.error = f"span {span_hex}: startTimeUnixNano/endTimeUnixNano must be epoch nanoseconds, start <= end"
        return out
    out.events = _foreign(span, attrs, resource, trace_hex, span_hex, start_ms, end_ms)
    return out


def _exact(attrs: dict[str, Any]) -> dict[str, Any]:
    """An event our exporter encoded, from its vibekit.* attributes."""
    raw: dict[str, Any] = {name: attrs[sc.PREFIX + name] for name in sc.EVENT_FIELDS if sc.PREFIX + name in attrs}
    raw["timestamp"] = attrs.get(sc.TIMESTAMP_MS)
    for name in sc.JSON_FIELDS:
        text = attrs.get(sc.PREFIX + name)
        if isinstance(text, str):
            try:
                raw[name] = json.loads(text)
            except ValueError:
                raw[name] = {"_raw": text}  # kept, not lost; the chain validates the rest
    return raw


def _first_key(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if attrs.get(k) not in (None, "")), None)


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attrs[k] for k in keys if attrs.get(k) not in (None, "")), None)


def _foreign(span: Span, attrs: dict[str, Any], resource: dict[str, Any], trace_hex: str, span_hex: str,
             start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    service = resource.get("service.name")
    conversation = _first(attrs, _SESSION_KEYS)
    category = str(_first(attrs, _SYSTEM_KEYS) or service or "otel")
    operation = _first(attrs, ("gen_ai.operation.name", "openinference.span.kind", "llm.request.type"))
    prompt, completion = _first(attrs, _PROMPT_KEYS), _first(attrs, _COMPLETION_KEYS)
    # The prompt and completion become label and stream_data: not stored a second time in metadata.
    mapped = {_first_key(attrs, _PROMPT_KEYS), _first_key(attrs, _COMPLETION_KEYS)}
    kept = {k: v for k, v in attrs.items() if k not in mapped}
    meta: dict[str, Any] = {"otel": {"trace_id": trace_hex, "span_id": span_hex, "name": span.name,
                                     "kind": span.kind, "attributes": kept}}
    if span.parent_span_id:
        meta["otel"]["parent_span_id"] = span.parent_span_id.hex()
    if conversation is not None:
        meta["conversation_id"] = str(conversation)
    model = _first(attrs, _MODEL_KEYS)
    if model is not None:
        meta["model"] = str(model)
    for name, keys in (("input_tokens", _INPUT_TOKEN_KEYS), ("output_tokens", _OUTPUT_TOKEN_KEYS)):
        value = _first(attrs, keys)
        if isinstance(value, int | float) and not isinstance(value, bool):
            meta[name] = value
    common: dict[str, Any] = {"session_id": trace_hex, "category": category}
    if isinstance(service, str):
        common["service_name"] = service
    if isinstance(resource.get("service.version"), str):
        common["service_version"] = resource["service.version"]
    environment = resource.get("deployment.environment") or resource.get("deployment.environment.name")
    if isinstance(environment, str):
        common["context"] = {"environment": environment}
    action = str(operation) if operation is not None else None
    failed = span.status.code == _STATUS_ERROR
    events: list[dict[str, Any]] = []
    base = f"otlp-{trace_hex}-{span_hex}"
    if not span.parent_span_id:
        events.append({**common, "event_type": "start", "event_id": f"{base}-0start", "timestamp": start_ms,
                       "action": action, "label": str(prompt) if prompt is not None else span.name,
                       "metadata": meta})
        end_meta: dict[str, Any] = {"status": "error" if failed else "completed"}
        if span.status.message:
            end_meta["otel_status_message"] = span.status.message
        end = {**common, "event_type": "end", "event_id": f"{base}-9end", "timestamp": end_ms,
               "duration": (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000, "metadata": end_meta}
        if completion is not None:
            end["stream_data"] = str(completion)
        events.append(end)
    else:
        custom = {**common, "event_type": "custom", "event_id": base, "timestamp": start_ms, "action": action,
                  "label": str(prompt) if prompt is not None else span.name,
                  "duration": (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000, "metadata": meta}
        if completion is not None:
            custom["stream_data"] = str(completion)
        events.append(custom)
    for index, event in enumerate(span.events):
        if event.name != "exception":
            continue
        e_attrs = attributes(event.attributes)
        error_type = str(e_attrs.get("exception.type") or "Error")
        message = str(e_attrs.get("exception.message") or span.status.message or error_type)
        error: dict[str, Any] = {"type": error_type, "message": message}
        if isinstance(e_attrs.get("exception.stacktrace"), str):
            error["stack"] = e_attrs["exception.stacktrace"]
        ts = max(event.time_unix_nano // 1_000_000, start_ms)
        events.insert(len(events) - (1 if not span.parent_span_id else 0),
                      {**common, "event_type": "error", "event_id": f"{base}-5exc{index}", "timestamp": ts,
                       "label": f"{error_type}: {message}", "metadata": {"error": error}})
    return events
