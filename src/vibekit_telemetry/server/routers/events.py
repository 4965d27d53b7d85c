"""/api/events: query, batch ingest, export (NDJSON) and deletion."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from itertools import islice
from typing import Annotated, Any, Final, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.responses import Response, StreamingResponse

from ...events import EVENT_TYPES, TelemetryEvent
from ...query import event_cursor, parse_query
from ...store.base import EventIterable
from ..auth import SECURITY_REQUIREMENTS, Principal, authorize, require
from ..body import parse_body
from ..errors import dumps, json_response, validation_error
from ..ingest import Prepared, commit, prepare, runtime_of, unpack
from ._common import (
    DEFAULT_PAGE,
    MAX_PAGE,
    audit,
    bool_param,
    check_params,
    compact,
    get_telemetry,
    split_values,
)

router = APIRouter(tags=["events"])

QUERY_PARAMS: Final = ("since", "until", "session_id", "event_type", "category", "action", "contains",
                       "limit", "offset", "order")
PAGE_PARAMS: Final = (*QUERY_PARAMS, "cursor")
EXPORT_PAGE: Final = 2000
INLINE_BODY_BYTES: Final = 64 * 1024

_EVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "One event. snake_case, the seeds' camelCase and VibeKit names (agentType, mode, "
                   "prompt) are all accepted.",
    "required": ["event_type"],
    "properties": {
        "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "category": {"type": "string", "description": "the agent type, e.g. claude"},
        "session_id": {"type": "string"},
        "action": {"type": "string"},
        "label": {"type": "string"},
        "value": {"type": "number"},
        "stream_data": {"type": "string"},
        "sandbox_id": {"type": "string"},
        "repo_url": {"type": "string"},
        "timestamp": {"type": "integer", "description": "epoch milliseconds"},
        "duration": {"type": "number", "minimum": 0},
        "metadata": {"type": "object"},
        "context": {"type": "object"},
        "event_id": {"type": "string", "description": "idempotency key; assigned (UUIDv7) when absent"},
    },
}
INGEST_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"oneOf": [
                _EVENT_SCHEMA,
                {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1},
                {"type": "object", "required": ["events"],
                 "properties": {"events": {"type": "array", "items": _EVENT_SCHEMA, "minItems": 1}}},
            ]}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one event per line"}},
        },
    },
}
WAIT_HELP: Final = "answer after the commit (default); false: fire-and-forget, 202 before the commit"
# POST /api/events as require() and Query() would have declared it (the route reads both itself).
INGEST_OPENAPI: Final[dict[str, Any]] = {
    **INGEST_BODY,
    "parameters": [{"name": "wait", "in": "query", "required": False, "description": WAIT_HELP,
                    "schema": {"type": "boolean", "default": True, "title": "Wait", "description": WAIT_HELP}}],
    "security": SECURITY_REQUIREMENTS,
}
ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "Validation Error: `{error, message, details: [{field, message}]}`"},
    401: {"description": "No valid credential"},
    403: {"description": "The credential lacks the scope"},
    429: {"description": "Rate limit exceeded; see Retry-After"},
}

Since = Annotated[str | None, Query(description="epoch ms, ISO 8601, `1h`, `yesterday` …")]
Until = Annotated[str | None, Query(description="epoch ms, ISO 8601, `now` …")]
Strings = Annotated[list[str] | None, Query(description="repeat or comma-separate for several")]
Order = Annotated[Literal["asc", "desc"] | None, Query()]


def _filters(since: str | None, until: str | None, session_id: list[str] | None, event_type: list[str] | None,
             category: list[str] | None, action: list[str] | None, contains: str | None,
             meta: dict[str, Any]) -> dict[str, Any]:
    return compact({"since": since, "until": until, "session_id": session_id, "event_type": event_type,
                    "category": category, "action": action, "contains": contains, "metadata": meta or None})


@router.get("/api/events", operation_id="queryEvents", summary="Query stored events", responses=ERRORS)
def query_events(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    since: Since = None, until: Until = None, session_id: Strings = None, event_type: Strings = None,
    category: Strings = None, action: Strings = None,
    contains: Annotated[str | None, Query(description="text search in label and stream data")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    order: Order = None,
    cursor: Annotated[str | None, Query(max_length=4096, description="the next_cursor of the previous page: "
                                        "the page after it, as fast as the first (instead of offset)")] = None,
) -> Response:
    """Return events matching every filter given, oldest first (order=desc for newest first)."""
    meta = check_params(request, PAGE_PARAMS, metadata=True)
    filters = _filters(since, until, session_id, event_type, category, action, contains, meta)
    parsed = parse_query(**filters, limit=limit, offset=offset, order=order, cursor=cursor)
    events = get_telemetry(request).store.query(parsed)
    body: dict[str, Any] = {"events": [e.to_dict() for e in events], "count": len(events), "limit": limit,
                            "offset": offset}
    if len(events) == limit:  # maybe more: where the next page starts, by cursor (and by offset without one)
        body["next_cursor"] = event_cursor(events[-1], parsed)
        if cursor is None:
            body["next_offset"] = offset + limit
    return json_response(body)


class RequestHandlingRoute(APIRoute):
    """A route whose endpoint takes the Request and returns a Response itself: FastAPI solves nothing per call.

    Its OpenAPI operation is still generated from the endpoint's declaration (and openapi_extra).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint itself (an async function of the Request)."""
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


async def ingest_events(request: Request) -> Response:
    """Run every event through the chain (400 lists each bad one, nothing is stored), then commit them all."""
    # The key and `wait` are read here rather than by FastAPI dependencies (declared in INGEST_OPENAPI
    # instead): the busiest route skips dependency solving, about a third of its framework cost per request.
    authorize(request, "ingest")
    check_params(request, ("wait",))
    wait = bool_param(request, "wait", True)
    if "respond-async" in request.headers.get("prefer", "").lower() and "wait" not in request.query_params:
        wait = False
    settings = request.app.state.settings
    runtime = runtime_of(get_telemetry(request))
    metrics = request.app.state.metrics
    # Group commit: a commit running meanwhile may wait briefly for this batch (worker.expect()).
    arrival = runtime.worker.expect()
    try:
        raw = await request.body()

        def work() -> Prepared:
            items, single = unpack(parse_body(raw, request.headers.get("content-type"), settings.max_json_depth))
            try:
                return prepare(runtime, items, single)
            except Exception:
                metrics.http_rejected.inc(len(items))
                raise

        # A small batch (about 100 events) is parsed and processed in about a millisecond: on the event
        # loop, where a hop to the thread pool would cost more than the work (and its threads would
        # compete with the writer for the GIL). A large one takes milliseconds: off the loop.
        prepared = work() if len(raw) <= INLINE_BODY_BYTES else await run_in_threadpool(work)
        result = await commit(runtime, prepared, wait=wait, arrival=arrival)
    finally:
        arrival.done()
    metrics.http_events.inc(result["accepted"])
    return json_response(result, 200 if result["committed"] else 202)


router.add_api_route(
    "/api/events", ingest_events, methods=["POST"], operation_id="ingestEvents", summary="Send one event or a batch",
    status_code=200, openapi_extra=INGEST_OPENAPI, route_class_override=RequestHandlingRoute,
    responses={**ERRORS, 200: {"description": "Committed to the store: `{accepted, event_ids, committed: true}`"},
               202: {"description": "Queued, not yet committed (`?wait=false` or `Prefer: respond-async`)"},
               413: {"description": "Body over the size limit"},
               415: {"description": "Not JSON or NDJSON"},
               503: {"description": "Ingest queue full or store unavailable; retry with the same event ids"}})


@router.get("/api/events/export", operation_id="exportEvents", summary="Export events as NDJSON",
            responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}},
                                       "description": "one JSON event per line"}})
def export_events(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    since: Since = None, until: Until = None, session_id: Strings = None, event_type: Strings = None,
    category: Strings = None, action: Strings = None,
    contains: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000_000)] = None,
) -> Response:
    """Stream matching events as NDJSON in pages (constant memory); recorded in the audit log."""
    meta = check_params(request, (*QUERY_PARAMS, "limit"), metadata=True)
    filters = _filters(since, until, session_id, event_type, category, action, contains, meta)
    parse_query(**filters)  # 400 now rather than halfway through the stream
    store = get_telemetry(request).store
    audit(request, principal, "export", "events", {"filters": filters, "limit": limit})

    def lines() -> Iterator[bytes]:
        # The store's keyset iterator: constant memory and no OFFSET rescans, however many events.
        events = store.iter_events(parse_query(**filters), chunk_size=EXPORT_PAGE) \
            if isinstance(store, EventIterable) else _paged(store, filters)
        page: list[bytes] = []
        for event in islice(events, limit):
            page.append(dumps(event.to_dict()) + b"\n")
            if len(page) == EXPORT_PAGE:
                yield b"".join(page)
                page = []
        if page:
            yield b"".join(page)

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="events.ndjson"'})


def _paged(store: Any, filters: dict[str, Any]) -> Iterator[TelemetryEvent]:
    """Events page by page, for a store that has no iter_events."""
    offset = 0
    while True:
        events = store.query(parse_query(**filters, limit=EXPORT_PAGE, offset=offset))
        yield from events
        if len(events) < EXPORT_PAGE:
            return
        offset += len(events)


@router.delete("/api/events", operation_id="deleteEvents", summary="Delete events (admin)",
               responses=ERRORS)
async def delete_events(
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
    older_than: Annotated[str | None, Query(description="delete events before this time (`30d`, ISO …)")]
    = None,
    session_id: Strings = None, category: Strings = None,
) -> Response:
    """Delete events older than a time, or of sessions or categories; recorded in the audit log."""
    check_params(request, ("older_than", "session_id", "category"))
    sessions, categories = split_values(session_id), split_values(category)
    if older_than is None and not sessions and not categories:
        detail = {"field": "older_than", "message": "give older_than, session_id or category"}
        raise validation_error([detail],
                               "Nothing to delete")
    telemetry = get_telemetry(request)
    deleted = await run_in_threadpool(lambda: telemetry.clean(older_than=older_than, session_ids=sessions,
                                                              categories=categories))
    # The audit write may wait on a locked database: off the event loop, like the delete itself.
    await run_in_threadpool(audit, request, principal, "delete", "events",
                            compact({"older_than": older_than, "session_ids": sessions, "categories": categories,
                                     "deleted": deleted}))
    return json_response({"deleted": deleted})
