"""/api/stats, /api/metrics and /api/insights: aggregates for dashboards."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ...query import parse_stats_filter
from ..auth import Principal, require
from ..errors import json_response
from ._common import check_params, compact, get_telemetry
from .events import ERRORS, Since, Strings, Until

router = APIRouter(tags=["stats"])

TimeRange = Annotated[str, Query(description="how far back: `15m`, `1h`, `24h`, `7d`")]
GroupBy = Literal["category", "action", "event_type", "agent_type", "agentType", "mode", "eventType", "type"]


@router.get("/api/stats", operation_id="getStats", summary="Totals, agents, date range, size",
            responses=ERRORS)
def get_stats(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    since: Since = None, until: Until = None, category: Strings = None,
    group_by: Annotated[GroupBy | None, Query(description="break counts down by this field")] = None,
) -> Response:
    """Return totals, share per agent, date range, store size, average duration, optional breakdown."""
    check_params(request, ("since", "until", "category", "group_by"))
    parsed = parse_stats_filter(**compact({"since": since, "until": until, "category": category,
                                           "group_by": group_by}))
    # Through Telemetry.get_stats: with the writers' sampling (kept fraction) beside the counts.
    return json_response(get_telemetry(request).get_stats(parsed).to_dict())


@router.get("/api/metrics", operation_id="getMetrics", summary="Live metrics for dashboards",
            responses=ERRORS)
def get_metrics(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    since: Since = None, until: Until = None,
    time_range: TimeRange = "1h", category: Strings = None,
) -> Response:
    """Return stats for the time range, the analytics metrics, the pipeline's and the live streams' counters."""
    check_params(request, ("since", "until", "time_range", "category"))
    telemetry = get_telemetry(request)
    stats = telemetry.store.get_stats(parse_stats_filter(**compact({"since": since, "until": until})))
    health = telemetry.get_health_status()
    body: dict[str, Any] = {
        "stats": stats.to_dict(),
        "pipeline": {key: health.get(key) for key in ("status", "queue", "events", "dropped", "writer")},
        "streams": request.app.state.hub.stats(),
        "uptime_s": round(time.monotonic() - request.app.state.started, 3),
        # Rollups + live sketches (docs/analytics.md documents this object's shape).
        "analytics": telemetry.get_metrics(time_range, _categories(category)),
    }
    return json_response(body)


@router.get("/api/insights", operation_id="getInsights", summary="Insights (analytics)", responses=ERRORS)
def get_insights(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    time_range: TimeRange = "24h", category: Strings = None,
) -> Response:
    """Return metrics, anomalies, trends and recommendations from the analytics engine."""
    check_params(request, ("time_range", "category"))
    provider = getattr(request.app.state, "insights", None)
    if callable(provider):
        return json_response(provider(time_range, _categories(category)))
    return json_response({"insights": [], "available": False})


def _categories(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]
