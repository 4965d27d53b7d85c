"""The web dashboard: its page and assets (strict CSP of their own) and CSV/JSON downloads (through export/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from ...dashboard import MOUNT, STATIC_DIR
from ...query import QueryFilter, SessionFilter, parse_query, parse_session_filter
from ..auth import Principal, require
from ..errors import ApiError, json_response, validation_error
from ._common import audit, check_params, compact, get_telemetry, split_values
from .events import ERRORS, Since, Strings, Until

router = APIRouter(tags=["dashboard"])

# The page's own script and styles only: no inline script, no CDN, no framing; connect-src 'self' covers
# fetch, WebSocket (same origin, ws: and wss:) and EventSource.
DASHBOARD_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
                        "frame-ancestors 'none'")
ASSETS: Final = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
DOWNLOAD_PARAMS: Final = ("what", "format", "since", "until", "session_id", "event_type", "category", "action",
                          "contains", "status", "sort", "order", "limit")
MAX_DOWNLOAD: Final = 1_000_000


def _headers() -> dict[str, str]:
    # The assets change with the package version only; revalidate so an upgrade shows at once.
    return {"content-security-policy": DASHBOARD_CSP, "cache-control": "no-cache"}


@router.get("/", include_in_schema=False)
@router.get(MOUNT, include_in_schema=False)  # without the slash, the page's relative asset URLs would miss
def root() -> Response:
    """Send a browser at the server's root (or at /dashboard) to the dashboard."""
    return RedirectResponse(f"{MOUNT}/", status_code=307)


@router.get(f"{MOUNT}/", include_in_schema=False)
def page() -> Response:
    """Serve the dashboard's single page (no data in it: the page asks the API, with the key it holds)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_headers())


@router.get(MOUNT + "/{name}", include_in_schema=False)
def asset(name: str) -> Response:
    """Serve one of the dashboard's assets (a fixed list: no path from the URL reaches the file system)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "Not Found", f"no dashboard asset {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_headers())


@router.get("/api/dashboard/download", operation_id="downloadForDashboard",
            summary="The dashboard's current filter as CSV or JSON", responses=ERRORS)
def download(
    request: Request,
    principal: Annotated[Principal, Depends(require("read"))],
    what: Annotated[Literal["events", "sessions"], Query(description="events or sessions")] = "events",
    format: Annotated[Literal["csv", "json"], Query(description="csv or json")] = "json",
    since: Since = None, until: Until = None, session_id: Strings = None, event_type: Strings = None,
    category: Strings = None, action: Strings = None, status: Strings = None,
    contains: Annotated[str | None, Query()] = None,
    sort: Annotated[str | None, Query(max_length=64, description="sessions: as /api/sessions")] = None,
    order: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_DOWNLOAD)] = 100_000,
) -> Response:
    """Stream the events or sessions matching the filter through the export writers; audited as an export.

    The bytes are those of `telemetry export` (export/stream.py): JSON `{"export", "events"|"sessions",
    "counts"}` or CSV, in the order on screen (newest first unless order/sort say otherwise), up to limit.
    """
    from ...export.stream import MEDIA_TYPES, check_stream, stream_export

    check_params(request, DOWNLOAD_PARAMS)
    store = get_telemetry(request).store
    selection: QueryFilter | SessionFilter
    if what == "events":
        bad = [name for name, value in (("status", status), ("sort", sort)) if value]
        if bad:
            raise validation_error([{"field": b, "message": "applies to sessions, not events"} for b in bad])
        filters = compact({"since": since, "until": until, "session_id": split_values(session_id),
                           "event_type": split_values(event_type), "category": split_values(category),
                           "action": split_values(action), "contains": contains})
        selection = parse_query(**filters, order=order or "desc", limit=limit)  # 400 now, not mid-download
    else:
        bad = [name for name, value in (("session_id", session_id), ("event_type", event_type),
                                        ("action", action), ("contains", contains)) if value]
        if bad:
            raise validation_error([{"field": b, "message": "applies to events, not sessions"} for b in bad])
        filters = compact({"since": since, "until": until, "category": split_values(category),
                           "status": split_values(status), "sort": sort})
        selection = parse_session_filter(**filters, order=order, limit=limit)
    check_stream(store, what, format)
    audit(request, principal, "export", what, {"filters": filters, "format": format, "limit": limit,
                                               "via": "dashboard"})
    stream = stream_export(store, what, format, selection)

    async def body() -> AsyncIterator[bytes]:
        # Read in the threadpool; when the client goes, Starlette cancels this generator and the
        # writer is stopped here at once (left to garbage collection it could write on for minutes).
        try:
            async for chunk in iterate_in_threadpool(iter(stream)):
                yield chunk
        finally:
            stream.close()

    return StreamingResponse(body(), media_type=MEDIA_TYPES[format],
                             headers={"Content-Disposition": f'attachment; filename="{what}.{format}"'},
                             background=BackgroundTask(stream.close))


@router.get("/api/dashboard/info", operation_id="dashboardInfo", summary="Version, retention and features",
            responses=ERRORS)
def info(request: Request, _principal: Annotated[Principal, Depends(require("read"))]) -> Response:
    """Return what the Health page shows beside /api/health: versions, retention per store, auth, analytics."""
    from ... import __version__

    check_params(request, ())
    telemetry = get_telemetry(request)
    config = telemetry.config
    retention = []
    for entry in config.storage_entries():
        options = dict(getattr(entry, "options", None) or {})
        retention.append({"store": getattr(entry, "type", None), "prune_days": options.get("prune_days"),
                          "max_size_mb": options.get("max_size_mb")})
    return json_response({"version": __version__, "service": {"name": config.service_name,
                                                              "version": config.service_version},
                          "auth": request.app.state.settings.auth_enabled, "retention": retention,
                          "analytics_enabled": bool(getattr(config.analytics, "enabled", False))})
