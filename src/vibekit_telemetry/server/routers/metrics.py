"""/metrics: Prometheus exposition from the app's own registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ..auth import Principal, require

router = APIRouter(tags=["metrics"])


def _public_metrics(settings: Any) -> bool:
    return bool(settings.public_metrics)


@router.get("/metrics", operation_id="prometheusMetrics", summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}}})
def prometheus_metrics(
    request: Request,
    _principal: Annotated[Principal, Depends(require("read", public=_public_metrics))],
) -> Response:
    """Return events ingested, errors, queue depth, drops, flush and request latency histograms."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
