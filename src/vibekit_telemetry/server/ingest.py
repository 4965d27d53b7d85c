"""Batch ingest for POST /api/events: validate every event first, then queue all or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent, coerce_event, now_ms, validate_event
from ..ids import uuid7
from .errors import ApiError, Detail, from_validation, validation_error

if TYPE_CHECKING:
    from ..service import Telemetry

MAX_BATCH_EVENTS: Final = 10_000
MAX_DETAILS: Final = 100
BODY_HINT: Final = 'one event object, an array of events, or {"events": [...]}'


@dataclass(slots=True)
class Prepared:
    """Validated events with their ids, ready to queue."""

    events: list[TelemetryEvent]
    single: bool
    started_sessions: dict[str, str] = field(default_factory=dict)


def unpack(document: Any) -> tuple[list[Any], bool]:
    """Return (raw events, single) from a body: an event, a list, or {"events": [...]}."""
    if isinstance(document, list):
        items, single = document, False
    elif isinstance(document, dict):
        if "events" in document:
            extra = [k for k in document if k != "events"]
            if extra:
                raise validation_error([{"field": k, "message": "unexpected beside events"} for k in extra],
                                       "Invalid body")
            items, single = document["events"], False
            if not isinstance(items, list):
                raise validation_error([{"field": "events", "message": "expected an array of events"}],
                                       "Invalid body")
        else:
            items, single = [document], True
    else:
        raise validation_error([{"field": "body", "message": f"expected {BODY_HINT}"}], "Invalid body")
    if not items:
        raise validation_error([{"field": "events", "message": "expected at least one event"}],
                               "Invalid body")
    if len(items) > MAX_BATCH_EVENTS:
        raise ApiError(413, "Payload Too Large", f"at most {MAX_BATCH_EVENTS:,} events per request",
                       [{"field": "events", "message": f"{len(items)} events; split the batch"}])
    return items, single


def prepare(items: list[Any], single: bool) -> Prepared:
    """Validate every event (collecting every error with its index) and give each an id."""
    details: list[Detail] = []
    events: list[TelemetryEvent] = []
    started: dict[str, str] = {}
    bad = 0
    now = now_ms()
    for index, raw in enumerate(items):
        prefix = "" if single else f"events[{index}]."
        if not isinstance(raw, dict):
            bad += 1
            if len(details) < MAX_DETAILS:
                details.append({"field": prefix.rstrip(".") or "body", "message": "expected a JSON object"})
            continue
        try:
            event = validate_event(coerce_event(raw))
        except ValidationError as exc:
            bad += 1
            if len(details) < MAX_DETAILS:
                details.append(from_validation(exc, prefix))
            continue
        if not event.timestamp:
            event.timestamp = now
        if event.event_id is None:
            # Assigned here so the response can name them: a client retrying the same events with these
            # ids gets them stored once (the store skips known event ids).
            event.event_id = uuid7(event.timestamp)
        if event.event_type == "start" and event.session_id is None:
            event.session_id = uuid7(event.timestamp)
            started[event.event_id] = event.session_id
        events.append(event)
    if bad:
        total = len(items)
        message = (f"{bad} of {total} events are invalid; nothing was stored" if not single
                   else "the event is invalid; nothing was stored")
        if bad > len(details):
            message += f" (first {len(details)} errors listed)"
        raise validation_error(details, message)
    return Prepared(events, single, started)


def enqueue(telemetry: Telemetry, prepared: Prepared, *, wait: bool) -> dict[str, Any]:
    """Queue validated events through track_batch (the same chain as track()); flush first if asked."""
    events = prepared.events
    ids = [e.event_id for e in events]
    if telemetry.config.disabled:
        raise ApiError(503, "Service Unavailable", "tracking is disabled on this server "
                       "(disabled=True, TELEMETRY_DISABLED or DO_NOT_TRACK)")
    accepted = telemetry.track_batch(events)
    if accepted < len(events):
        raise ApiError(503, "Service Unavailable",
                       f"the ingest queue is full: {accepted} of {len(events)} events queued; retry the "
                       "batch with the same event ids (duplicates are skipped)",
                       headers={"Retry-After": "1"}, extra={"accepted": accepted, "event_ids": ids})
    flushed = telemetry.flush(timeout=30.0) if wait else None
    body: dict[str, Any] = {"accepted": accepted, "event_ids": ids}
    if prepared.started_sessions:
        body["session_ids"] = prepared.started_sessions
    if flushed is not None:
        body["flushed"] = flushed
    return body
