"""/api/sessions: list sessions, one session with its events, delete a session."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from ...query import parse_session_filter, session_cursor
from ..auth import Principal, require
from ..errors import ApiError, json_response
from ._common import DEFAULT_PAGE, MAX_PAGE, audit, check_params, compact, get_telemetry
from .events import ERRORS, Since, Strings, Until

router = APIRouter(tags=["sessions"])

LIST_PARAMS: Final = ("status", "category", "since", "until", "with_errors", "limit", "offset", "order", "sort",
                      "cursor")
SessionId = Annotated[str, Path(min_length=1, max_length=512)]


@router.get("/api/sessions", operation_id="listSessions", summary="List sessions", responses=ERRORS)
def list_sessions(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    status: Strings = None, category: Strings = None, since: Since = None, until: Until = None,
    with_errors: Annotated[bool | None, Query(description="only sessions with (true) or without errors")]
    = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    sort: Annotated[str | None, Query(max_length=64, description="start_time (default), duration, event_count "
                                      "or error_count; ties by start time, then id")] = None,
    cursor: Annotated[str | None, Query(max_length=4096, description="the next_cursor of the previous page: "
                                        "the page after it, as fast as the first (instead of offset)")] = None,
) -> Response:
    """Return sessions (newest first by default) filtered by status, category, time and errors, sorted by sort."""
    check_params(request, LIST_PARAMS)
    parsed = parse_session_filter(**compact({"status": status, "category": category, "since": since,
                                             "until": until, "with_errors": with_errors}),
                                  limit=limit, offset=offset, order=order, sort=sort, cursor=cursor)
    sessions = get_telemetry(request).store.get_sessions(parsed)
    body = {"sessions": [s.to_dict() for s in sessions], "count": len(sessions), "limit": limit,
            "offset": offset, "sort": parsed.sort_by, "order": parsed.order}
    if len(sessions) == limit:  # maybe more: where the next page starts, by cursor (and by offset without one)
        body["next_cursor"] = session_cursor(sessions[-1], parsed)
        if cursor is None:
            body["next_offset"] = offset + limit
    return json_response(body)


@router.get("/api/sessions/{session_id}", operation_id="getSession", summary="One session with its events",
            responses={**ERRORS, 404: {"description": "No such session"}})
def get_session(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    session_id: SessionId,
    with_events: Annotated[bool, Query(description="include the session's events")] = True,
) -> Response:
    """Return one session and, unless with_events=false, its events in time order."""
    check_params(request, ("with_events",))
    session = get_telemetry(request).store.get_session(session_id, with_events=with_events)
    if session is None:
        raise ApiError(404, "Not Found", f"no session {session_id!r}",
                       [{"field": "session_id", "message": "no such session"}])
    return json_response(session.to_dict())


@router.delete("/api/sessions/{session_id}", operation_id="deleteSession", summary="Delete a session (admin)",
               responses={**ERRORS, 404: {"description": "No such session"}})
async def delete_session(
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
    session_id: SessionId,
) -> Response:
    """Delete a session and its events; recorded in the audit log."""
    check_params(request, ())
    telemetry = get_telemetry(request)

    def work() -> int | None:
        telemetry.flush()
        if not telemetry.store.existing_sessions([session_id]):
            return None
        return telemetry.clean(session_ids=[session_id])

    deleted = await run_in_threadpool(work)
    if deleted is None:
        raise ApiError(404, "Not Found", f"no session {session_id!r}",
                       [{"field": "session_id", "message": "no such session"}])
    await run_in_threadpool(audit, request, principal, "delete", f"session:{session_id}", {"deleted": deleted})
    return json_response({"deleted": deleted, "session_id": session_id})
