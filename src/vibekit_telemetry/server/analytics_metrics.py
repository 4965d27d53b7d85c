"""Prometheus families for issue 10: the analytics results, read at scrape time.

Gauges over the last 5 minutes (events per minute, error rate, latency quantiles) come from the
same rollup read as `get_metrics("5m")`; open sessions per agent from the session rollups of the
last 24 hours; counters (anomalies by metric and severity, alerts by kind and severity, evaluations,
USD and tokens by agent and model) from this process's engine. A scrape never fails because of
analytics: a store without rollup reads just leaves the gauges out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from ..analytics.engine import Analytics
    from ..service import Telemetry

logger = logging.getLogger("vibekit_telemetry.server")

WINDOW: Final = "5m"
DAY_MS: Final = 86_400_000
_QUANTILES: Final = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


def analytics_families(telemetry: Telemetry) -> Iterator[Metric]:
    """Yield the analytics gauges and counters (the engine starts on the first scrape if nothing started it)."""
    try:
        engine = telemetry.analytics
    except Exception:  # tracking disabled: no engine, nothing to export
        return
    yield from _counters(engine)
    try:
        yield from _gauges(engine)
    except Exception as exc:  # a write-only or unreachable store: the counters above still go out
        logger.debug("analytics gauges left out of /metrics: %s", exc)


def _gauges(engine: Analytics) -> Iterator[Metric]:
    from ..analytics.window import breakdown_store, now_ms

    now = now_ms()
    metrics = engine.get_metrics(WINDOW, now=now)
    yield GaugeMetricFamily("telemetry_analytics_events_per_minute", "Events per minute over the last 5 minutes",
                            value=metrics["events"]["per_minute"])
    yield GaugeMetricFamily("telemetry_analytics_error_rate_percent",
                            "Error events as % of events over the last 5 minutes", value=metrics["errors"]["rate"])
    latency = GaugeMetricFamily("telemetry_analytics_latency_ms",
                                "Event duration quantiles over the last 5 minutes (live sketch)", labels=["quantile"])
    for label, key in _QUANTILES:
        value = metrics["performance"].get(key)
        if value is not None:
            latency.add_metric([label], float(value))
    yield latency
    active = GaugeMetricFamily("telemetry_analytics_active_sessions",
                               "Sessions started in the last 24 hours that have not ended, by agent", labels=["agent"])
    for group in breakdown_store(engine.store).session_breakdown(("category",), now - DAY_MS, now):
        active.add_metric([group.key[0] or ""], float(group.active))
    yield active


def _counters(engine: Analytics) -> Iterator[Metric]:
    anomalies = CounterMetricFamily("telemetry_analytics_anomalies_detected",
                                    "Anomalies the scheduled evaluation found, by series and severity",
                                    labels=["metric", "severity"])
    for (metric, severity), count in sorted(engine.evaluator.detected.items()):
        anomalies.add_metric([metric, severity], count)
    yield anomalies
    alerts = CounterMetricFamily("telemetry_analytics_alerts_fired", "Alerts fired, by kind and severity",
                                 labels=["kind", "severity"])
    for (kind, severity), count in sorted(engine.routing.fired.items()):
        alerts.add_metric([kind, severity], count)
    yield alerts
    yield CounterMetricFamily("telemetry_analytics_evaluations", "Scheduled analytics evaluations run",
                              value=engine.evaluations)
    cost = CounterMetricFamily("telemetry_analytics_cost_usd", "USD spent on tokens (price table), by agent and model",
                               labels=["agent", "model"])
    tokens = CounterMetricFamily("telemetry_analytics_tokens", "Tokens used, by agent, model and kind",
                                 labels=["agent", "model", "kind"])
    if engine.live is not None:
        for (agent, model), (usd, prompt, completion) in sorted(engine.live.usage_counters().items()):
            cost.add_metric([agent, model], usd)
            tokens.add_metric([agent, model, "prompt"], prompt)
            tokens.add_metric([agent, model, "completion"], completion)
    yield cost
    yield tokens
