"""Prometheus families for issue 13: the primary store's breaker, the spool, the healthy flag, memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

_STATES = ("closed", "open", "half_open")


def reliability_families(health: dict[str, Any]) -> Iterator[Metric]:
    """Yield the breaker state of a remote primary, spool depth, healthy (1/0), issues and RSS."""
    breaker = (health.get("primary") or {}).get("breaker")
    if breaker:
        state = GaugeMetricFamily("telemetry_primary_breaker_state", "1 for the primary store breaker's state",
                                  labels=["state"])
        for known in _STATES:
            state.add_metric([known], 1.0 if breaker["state"] == known else 0.0)
        yield state
        yield GaugeMetricFamily("telemetry_primary_breaker_opened", "Times the primary store's breaker opened",
                                value=breaker["times_opened"])
    spool = health.get("spool")
    if spool:
        yield GaugeMetricFamily("telemetry_spool_depth", "Events spooled locally for the primary store",
                                value=spool["depth"])
    if "healthy" in health:
        yield GaugeMetricFamily("telemetry_healthy", "1 when get_health_status() lists no issue",
                                value=1.0 if health["healthy"] else 0.0)
        yield GaugeMetricFamily("telemetry_health_issues", "Issues get_health_status() lists",
                                value=len(health.get("issues", [])))
    rss = (health.get("memory") or {}).get("rss_bytes")
    if rss is not None:
        yield GaugeMetricFamily("telemetry_process_resident_bytes", "Resident memory of the process", value=rss)
