"""/api/anomalies, /api/predictions, /api/alerts: the analytics engine's answers (docs/analytics.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from ..auth import Principal, require
from ..errors import json_response
from ._common import check_params, get_telemetry
from .events import ERRORS, Strings
from .stats import TimeRange

router = APIRouter(tags=["analytics"])

Sensitivity = Annotated[Literal["low", "medium", "high"] | None, Query(description="detector sensitivity")]


def _names(values: list[str] | None) -> list[str] | None:
    names = [v.strip() for value in values or () for v in value.split(",") if v.strip()]
    return names or None


@router.get("/api/anomalies", operation_id="getAnomalies", summary="Anomalies of the metric series",
            responses=ERRORS)
def get_anomalies(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    metric: Strings = None, sensitivity: Sensitivity = None, time_range: TimeRange = "24h",
) -> Response:
    """Return anomalies of throughput, error_rate, response_time, session_duration (or those named)."""
    check_params(request, ("metric", "sensitivity", "time_range"))
    found = get_telemetry(request).detect_anomalies(_names(metric), sensitivity=sensitivity, time_range=time_range)
    return json_response({"anomalies": found})


@router.get("/api/predictions", operation_id="getPredictions", summary="Forecasts with intervals",
            responses=ERRORS)
def get_predictions(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    metric: Strings = None,
    minutes_ahead: Annotated[int, Query(ge=1, le=10_080, description="how far ahead")] = 60,
) -> Response:
    """Return each metric's forecast, 95 % interval and backtest error."""
    check_params(request, ("metric", "minutes_ahead"))
    return json_response({"predictions": get_telemetry(request).generate_predictions(_names(metric), minutes_ahead)})


@router.get("/api/alerts", operation_id="getAlerts", summary="Alert history", responses=ERRORS)
def get_alerts(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Return the persisted alerts, newest first."""
    check_params(request, ("limit",))
    return json_response({"alerts": get_telemetry(request).alert_history(limit)})
