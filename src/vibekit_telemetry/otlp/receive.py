"""The receiver's work, shared by POST /v1/traces and OTLP/gRPC: request bodies to processed events.

Every span's events go through the runtime's processor chain (strict, so PII redaction and the
other steps run as for POST /api/events). A span that cannot become valid events is rejected alone,
and counted for the OTLP partial-success answer; the rest is committed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from .decode import DecodedSpan, OtlpDecodeError, decode_request

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from ..events import TelemetryEvent
    from ..runtime import Runtime

MAX_ERRORS_LISTED: Final = 5


@dataclass(slots=True)
class Received:
    """What a request gave: the processed events to commit, and the spans rejected with why."""

    events: list[TelemetryEvent]
    spans: int
    rejected_spans: int
    error_message: str


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing one that is truncated, corrupt or inflates past `limit` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpDecodeError(f"body is not valid gzip ({exc})") from None
    if len(out) > limit:
        raise OverflowError(f"gzip body inflates past the {limit:,}-byte limit")
    if not inflater.eof:
        raise OtlpDecodeError("gzip body is truncated (the stream does not end)")
    return out


def receive(runtime: Runtime, request: ExportTraceServiceRequest) -> Received:
    """Decode every span and run its events through the chain; invalid spans are rejected alone."""
    spans = list(decode_request(request))
    problems = [span.error for span in spans if span.error]
    good = [span for span in spans if not span.error]
    events, bad_spans = _process(runtime, good)
    problems.extend(bad_spans)
    message = "; ".join(problems[:MAX_ERRORS_LISTED])
    if len(problems) > MAX_ERRORS_LISTED:
        message += f" (and {len(problems) - MAX_ERRORS_LISTED} more)"
    return Received(events, len(spans), len(problems), message)


def _process(runtime: Runtime, spans: list[DecodedSpan]) -> tuple[list[TelemetryEvent], list[str]]:
    """Run the chain on all spans' events; drop each span holding an invalid one and run the rest again."""
    rejected: list[str] = []
    while True:
        items: list[Any] = []
        owner: list[int] = []
        for index, span in enumerate(spans):
            items.extend(span.events)
            owner.extend([index] * len(span.events))
        if not items:
            return [], rejected
        try:
            return runtime.chain.run(items, strict=True), rejected
        except ValidationError as exc:
            errors = getattr(exc, "errors", None) or [(0, exc)]
            bad: dict[int, str] = {}
            for item_index, error in errors:
                span = spans[owner[item_index]]
                bad.setdefault(owner[item_index], f"span {span.span_id}: {error}")
            rejected.extend(bad.values())
            # At least one span leaves per round, so this ends.
            spans = [span for index, span in enumerate(spans) if index not in bad]
