"""POST /api/pipeline: seed 004's usage ingestion endpoint, answering 2xx only once the payload is durable.

The `data` object is checked against the payload whitelist (usage/payload.py): unknown fields are
dropped (named in the answer, their values never stored), a wrong type is refused with 400 naming the
field. The payload then takes the road of every event: the processor chain, one durable commit in the
primary store (group commit with concurrent requests), and from there the `usage-batches` exporter
cuts it into batch objects. Rate limits: the server's per-client ingest budget (ratelimit.py).
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import ValidationError
from ...processing import BatchValidationError
from ...usage.payload import FIELDS, to_raw_event, validate_payload
from ..body import parse_body
from ..errors import ApiError, from_validation, json_response, validation_error
from ..ingest import Prepared, commit, runtime_of
from ._common import check_params, get_telemetry

router = APIRouter(tags=["usage"])

# A usage payload is a few hundred bytes: anything near this is not one (the server's own limit is larger).
MAX_PAYLOAD_BYTES: Final = 64 * 1024
_SCHEMA: Final[dict[str, Any]] = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["eventName", "userId", "sessionId", "timestamp"],
                            "properties": {name: {"type": {"text": "string", "iso": "string", "count": "integer",
                                                           "ms": "number", "bool": "boolean",
                                                           "options": "object"}[kind]}
                                           for name, kind in FIELDS.items()}}},
}


@router.post("/api/pipeline", operation_id="ingestUsage", summary="Send one anonymous usage payload",
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/json": {"schema": _SCHEMA}}}},
             responses={200: {"description": "Committed: `{accepted: 1, committed: true, event_id, dropped}`"},
                        400: {"description": "Wrong type or missing field, named in details"},
                        413: {"description": "Body over the size limit"},
                        429: {"description": "Per-client ingest rate limit; see Retry-After"}})
async def ingest_usage(request: Request) -> Response:
    """Validate one `{"data": {...}}` payload, commit it durably, answer 200 (no credential needed)."""
    check_params(request, ())
    raw = await request.body()
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ApiError(413, "Payload Too Large", f"a usage payload is at most {MAX_PAYLOAD_BYTES:,} bytes",
                       [{"field": "body", "message": f"at most {MAX_PAYLOAD_BYTES} bytes"}])
    settings = request.app.state.settings
    telemetry = get_telemetry(request)
    runtime = runtime_of(telemetry)

    def work() -> tuple[Prepared, list[str]]:
        document = parse_body(raw, request.headers.get("content-type"), settings.max_json_depth)
        if not isinstance(document, dict) or "data" not in document:
            raise validation_error([{"field": "data", "message": "expected {\"data\": {...}}"}], "Invalid body")
        data = document["data"]
        try:
            clean = validate_payload(data)
        except ValidationError as exc:
            raise validation_error([from_validation(exc)], "the payload is invalid; nothing was stored") from None
        dropped = sorted(str(k) for k in data if k not in FIELDS)
        try:
            events = runtime.process_now([to_raw_event(clean)])
        except ValidationError as exc:  # a processor of this server refused it: still the sender's data
            first = exc.errors[0][1] if isinstance(exc, BatchValidationError) else exc
            raise validation_error([from_validation(first, "data.")],
                                   "the payload is invalid; nothing was stored") from None
        return Prepared(events, True, 1), dropped

    prepared, dropped = await run_in_threadpool(work)
    result = await commit(runtime, prepared, wait=True)
    body = {"accepted": result["accepted"], "committed": True,
            "event_id": (result["event_ids"] or [None])[0], "dropped": dropped}
    return json_response(body, 200)
