"""Batch ingest for POST /api/events: the processor chain on every event first, then one durable commit.

The chain runs here, on the request, in strict mode: a batch is all-or-nothing at the door (400 lists
every bad event). The valid batch goes to the writer as one ticket and the answer waits for the commit
that holds it (group commit: tickets that arrive while a commit runs share the next one). A client that
asks for fire-and-forget (`?wait=false` or `Prefer: respond-async`) gets 202 before the commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..processing import BatchValidationError
from .errors import ApiError, Detail, from_validation, validation_error

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..service import Telemetry
    from ..tickets import Ticket
    from ..worker import Arrival

MAX_BATCH_EVENTS: Final = 10_000
MAX_DETAILS: Final = 100
BODY_HINT: Final = 'one event object, an array of events, or {"events": [...]}'
COMMIT_TIMEOUT_S: Final = 30.0


@dataclass(slots=True)
class Prepared:
    """Processed events with their ids, ready to commit."""

    events: list[TelemetryEvent]
    single: bool
    received: int
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


def runtime_of(telemetry: Telemetry) -> Runtime:
    """The recording runtime, or 503 when tracking is disabled on this server."""
    runtime = telemetry.runtime
    if runtime is None:
        raise ApiError(503, "Service Unavailable", "tracking is disabled on this server "
                       "(disabled=True, TELEMETRY_DISABLED or DO_NOT_TRACK)")
    return runtime


def prepare(runtime: Runtime, items: list[Any], single: bool) -> Prepared:
    """Run the chain on every event (collecting every error with its index): all valid, or 400."""
    positions: list[int] = []
    try:
        events = runtime.chain.run(items, strict=True, positions=positions)
    except BatchValidationError as exc:
        details = [_detail(items, index, error, single) for index, error in exc.errors]
    except ValidationError as exc:
        details = [_detail(items, 0, exc, single)]
    else:
        started = {event.event_id or "": event.session_id or ""
                   for event, index in zip(events, positions, strict=True)
                   if event.event_type == "start" and not _has_session(items[index])}
        return Prepared(events, single, len(items), started)
    bad = len(details)
    message = (f"{bad} of {len(items)} events are invalid; nothing was stored" if not single
               else "the event is invalid; nothing was stored")
    if bad > MAX_DETAILS:
        message += f" (first {MAX_DETAILS} errors listed)"
    raise validation_error(details[:MAX_DETAILS], message)


def _detail(items: list[Any], index: int, error: ValidationError, single: bool) -> Detail:
    prefix = "" if single else f"events[{index}]."
    if not isinstance(items[index], dict):
        return {"field": prefix.rstrip(".") or "body", "message": "expected a JSON object"}
    return from_validation(error, prefix)


def _has_session(raw: dict[str, Any]) -> bool:
    return bool(raw.get("session_id") or raw.get("sessionId"))


async def commit(runtime: Runtime, prepared: Prepared, *, wait: bool, arrival: Arrival | None = None) \
        -> dict[str, Any]:
    """Queue the processed batch; with wait, answer only once the store committed it.

    arrival: the announcement (runtime.worker.expect()) made when the request came in; done once queued.
    """
    events = prepared.events
    ids = [e.event_id for e in events]
    body: dict[str, Any] = {"accepted": len(events), "event_ids": ids}
    if prepared.started_sessions:
        body["session_ids"] = prepared.started_sessions
    if len(events) < prepared.received:
        body["dropped_by_processors"] = prepared.received - len(events)
    if not events:
        body["committed"] = True
        return body
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    def on_done(_ticket: Ticket) -> None:
        loop.call_soon_threadsafe(settle)

    ticket = runtime.submit_processed(events, urgent=wait, on_done=on_done if wait else None)
    if arrival is not None:
        arrival.done()
    if ticket is None:
        raise ApiError(503, "Service Unavailable",
                       f"the ingest queue is full: none of {len(events)} events queued; retry the batch with the "
                       "same event ids (duplicates are skipped)",
                       headers={"Retry-After": "1"}, extra={"accepted": 0, "event_ids": ids})
    if not wait:
        body["committed"] = False
        return body
    try:
        # asyncio.timeout rather than wait_for: no extra task per request on the busiest route.
        async with asyncio.timeout(COMMIT_TIMEOUT_S):
            await done
    except TimeoutError:
        raise ApiError(503, "Service Unavailable",
                       f"the store did not commit the batch within {COMMIT_TIMEOUT_S:g} s; it may still be "
                       "written: retry with the same event ids (duplicates are skipped)",
                       headers={"Retry-After": "5"}, extra={"accepted": 0, "event_ids": ids}) from None
    if not ticket.committed:
        raise ApiError(503, "Service Unavailable",
                       f"the store did not take the batch ({ticket.error}); retry with the same event ids",
                       headers={"Retry-After": "5"}, extra={"accepted": 0, "event_ids": ids})
    body["committed"] = True
    return body
