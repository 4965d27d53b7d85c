"""OTLP/HTTP receiver: POST /v1/traces (protobuf or JSON, gzip) turns spans into sessions and events.

Same auth (`ingest` scope), body limit, processor chain and durable acknowledgement as POST
/api/events: the answer comes once the store committed the events. Spans that cannot become events
are reported per the OTLP spec's partial success (`rejectedSpans`, `errorMessage`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from ..auth import Principal, require
from ..body import loads, media_type
from ..errors import ApiError, json_response
from ..ingest import Prepared, commit, runtime_of
from ._common import get_telemetry

router = APIRouter(tags=["otlp"])

PROTOBUF_TYPES: Final = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPE: Final = "application/json"
OTLP_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest; `Content-Encoding: gzip` accepted.",
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object", "properties": {"resourceSpans": {"type": "array"}}}},
        },
    },
}


def _bad(message: str, field: str = "body") -> ApiError:
    return ApiError(400, "Bad Request", message, [{"field": field, "message": message}])


@router.post("/v1/traces", operation_id="otlpTraces", summary="Receive OTLP traces (OTLP/HTTP)",
             openapi_extra=OTLP_BODY,
             responses={200: {"description": "Committed: an ExportTraceServiceResponse (partialSuccess "
                                             "counts rejected spans)"},
                        400: {"description": "Not an OTLP request (malformed protobuf/JSON, bad gzip)"},
                        413: {"description": "Body over the size limit (also after gzip)"},
                        415: {"description": "Content-Type or Content-Encoding not supported"},
                        501: {"description": "The otlp extra is not installed on this server"},
                        503: {"description": "Ingest queue full or store unavailable; retry"}})
async def receive_traces(request: Request, _principal: Annotated[Principal, Depends(require("ingest"))]) -> Response:
    """Decode the spans, run their events through the chain, answer once the store committed them."""
    kind = media_type(request.headers.get("content-type"))
    if kind not in PROTOBUF_TYPES and kind != JSON_TYPE:
        raise ApiError(415, "Unsupported Media Type", "OTLP/HTTP takes application/x-protobuf or application/json",
                       [{"field": "content-type", "message": f"got {kind or 'none'}"}])
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("gzip", "identity", ""):
        raise ApiError(415, "Unsupported Media Type", "Content-Encoding must be gzip or identity",
                       [{"field": "content-encoding", "message": f"got {encoding}"}])
    try:
        from ...otlp import decode, receive
    except ImportError:
        raise ApiError(501, "Not Implemented", "the OTLP receiver needs the otlp extra: "
                       "pip install 'vibekit-telemetry[otlp]'") from None
    body = await request.body()
    settings = request.app.state.settings
    runtime = runtime_of(get_telemetry(request))
    metrics = request.app.state.metrics

    def work() -> receive.Received:
        raw = body
        if encoding == "gzip":
            try:
                raw = receive.gunzip(body, settings.max_body_bytes)
            except OverflowError as exc:
                raise ApiError(413, "Payload Too Large", str(exc),
                               [{"field": "body", "message": f"at most {settings.max_body_bytes} bytes"}]) from None
            except decode.OtlpDecodeError as exc:
                raise _bad(str(exc)) from None
        if not raw:
            raise _bad("empty body: expected an ExportTraceServiceRequest")
        try:
            if kind == JSON_TYPE:
                # The server's JSON reader: 400 for malformed JSON, NaN, bad UTF-8 or nesting past max_json_depth.
                message = decode.parse_json(loads(raw, settings.max_json_depth))
            else:
                message = decode.parse_protobuf(raw)
        except decode.OtlpDecodeError as exc:
            raise _bad(str(exc)) from None
        received = receive.receive(runtime, message)
        if received.rejected_spans:
            metrics.http_rejected.inc(received.rejected_spans)
        return received

    received = await run_in_threadpool(work)
    result = await commit(runtime, Prepared(received.events, False, len(received.events)), wait=True)
    metrics.http_events.inc(result["accepted"])
    return _answer(kind, received.rejected_spans, received.error_message)


def _answer(kind: str, rejected: int, message: str) -> Response:
    """An ExportTraceServiceResponse in the request's encoding; partialSuccess only when spans were rejected."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    if kind == JSON_TYPE:
        body: dict[str, Any] = {}
        if rejected:
            body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        return json_response(body)
    return Response(answer.SerializeToString(), media_type="application/x-protobuf")
