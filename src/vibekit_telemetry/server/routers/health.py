"""/health (liveness), /health/ready (store reachable) and /api/health (everything the SDK knows)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..auth import Principal, require
from ..errors import json_response
from ._common import get_telemetry

router = APIRouter(tags=["health"])


def _public_health(settings: Any) -> bool:
    return bool(settings.public_health)


@router.get("/health", operation_id="liveness", summary="Liveness: the process answers")
def liveness(request: Request,
             _principal: Annotated[Principal, Depends(require("read", public=_public_health))]) -> Response:
    """Answer 200 while the server runs."""
    return json_response({"status": "ok", "uptime_s": round(time.monotonic() - request.app.state.started, 3)})


@router.get("/health/ready", operation_id="readiness", summary="Readiness: store reachable, writer alive",
            responses={503: {"description": "Not ready"}})
def readiness(request: Request,
              _principal: Annotated[Principal, Depends(require("read", public=_public_health))]) -> Response:
    """Answer 200 when the store answers and the writer runs, else 503."""
    telemetry = get_telemetry(request)
    checks: dict[str, Any] = {}
    try:
        store = telemetry.store.health()
        checks["store"] = bool(store.get("reachable", False))
    except Exception as exc:
        checks["store"] = False
        checks["store_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    status = telemetry.get_health_status()
    checks["writer"] = bool(status.get("writer", {}).get("alive", False))
    ready = checks["store"] is True and checks["writer"]
    return json_response({"status": "ready" if ready else "unavailable", "checks": checks,
                          "healthy": status.get("healthy", ready), "issues": status.get("issues", []),
                          "components": _components(status)}, 200 if ready else 503)


def _components(status: dict[str, Any]) -> dict[str, Any]:
    """Each component in a line (issue 13): numbers and states only, no paths or error text."""
    spool = status.get("spool")
    breaker = (status.get("primary") or {}).get("breaker")
    return {
        "queue": {"depth": status["queue"]["depth"], "capacity": status["queue"]["capacity"]},
        "primary_breaker": breaker["state"] if breaker else None,
        "spool_depth": spool["depth"] if spool else None,
        "exporters": [{"name": e.get("name"), "breaker": e.get("breaker"), "lag": e.get("lag")}
                      for e in status.get("exporters", [])],
        "dropped": status.get("dropped", {}),
        "memory_rss_bytes": (status.get("memory") or {}).get("rss_bytes"),
        "disk_free_mb": (status.get("disk") or {}).get("free_mb"),
        "disk_full": bool((status.get("disk") or {}).get("full")),
        "last_commit_at": (status.get("last_commit") or {}).get("at"),
        # Plugins (issue 15): state and counts; the reason without the error's text.
        "plugins": [{key: p.get(key) for key in ("name", "version", "enabled", "calls", "errors", "timeouts",
                                                 "disabled_reason")} for p in status.get("plugins", [])],
    }


@router.get("/api/health", operation_id="health", summary="Pipeline and store health in detail")
def health(request: Request, _principal: Annotated[Principal, Depends(require("read"))]) -> Response:
    """Return queue, writer, drops and stores, as `telemetry health` shows them."""
    status = get_telemetry(request).get_health_status()
    status["streams"] = request.app.state.hub.stats()
    feed = getattr(request.app.state, "replica_feed", None)
    if feed is not None:  # replicas on PostgreSQL: the stream follows every replica's commits
        status["streams"]["replica_feed"] = feed.stats()
    return json_response(status)
