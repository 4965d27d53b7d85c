"""Prometheus instruments for one app, in a CollectorRegistry of its own (several apps per process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..events import TelemetryEvent

if TYPE_CHECKING:
    from ..service import Telemetry
    from .streams import StreamHub

# Categories are agent names, few in practice; a cap keeps a hostile client from exploding the series.
MAX_CATEGORY_LABELS: Final = 200
OTHER: Final = "_other"
FLUSH_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServerMetrics:
    """Counters fed by the pipeline's events plus gauges read from health at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # event:tracked runs on the writer thread for every event: a plain dict increment is the cheapest
        # thing it can do; the collector turns the dict into a counter family at scrape time.
        self._ingested: dict[tuple[str, str], int] = {}
        self._categories: set[str] = set()
        self._errors = 0
        self._telemetry: Telemetry | None = None
        self._hub: StreamHub | None = None
        self.http_events = Counter("telemetry_http_events_accepted", "Events accepted by POST /api/events",
                                   registry=self.registry)
        self.http_rejected = Counter("telemetry_http_events_rejected",
                                     "Events refused by POST /api/events validation", registry=self.registry)
        self.rate_limited = Counter("telemetry_rate_limited_requests", "Requests refused with 429",
                                    ["budget"], registry=self.registry)
        self.flush_latency = Histogram("telemetry_flush_duration_seconds",
                                       "Time the writer took to store one batch", buckets=FLUSH_BUCKETS,
                                       registry=self.registry)
        self.http_latency = Histogram("telemetry_http_request_duration_seconds", "HTTP request latency",
                                      ["method", "route", "status"], registry=self.registry)
        self.registry.register(_PipelineCollector(self))

    def attach(self, telemetry: Telemetry, hub: StreamHub | None = None) -> None:
        """Listen to the pipeline's events."""
        self._telemetry = telemetry
        self._hub = hub
        telemetry.on("events:tracked", self._on_tracked)
        telemetry.on("flush", self._on_flush)
        telemetry.on("error", self._on_error)

    def detach(self) -> None:
        """Stop listening."""
        if self._telemetry is not None:
            self._telemetry.off("events:tracked", self._on_tracked)
            self._telemetry.off("flush", self._on_flush)
            self._telemetry.off("error", self._on_error)

    def _on_tracked(self, events: list[TelemetryEvent]) -> None:
        ingested, categories = self._ingested, self._categories
        for event in events:
            category = event.category or ""
            if category not in categories:
                if len(categories) >= MAX_CATEGORY_LABELS:
                    category = OTHER
                else:
                    categories.add(category)
            key = (event.event_type, category)
            ingested[key] = ingested.get(key, 0) + 1

    def _on_flush(self, info: dict[str, Any]) -> None:
        self.flush_latency.observe(float(info.get("duration_ms", 0.0)) / 1000)

    def _on_error(self, *_: Any) -> None:
        self._errors += 1

    def collect_pipeline(self) -> Iterator[Metric]:
        """Yield the scrape-time families: ingested events, errors, queue, drops, streams."""
        ingested = CounterMetricFamily("telemetry_events_ingested", "Events stored, by type and category",
                                       labels=["event_type", "category"])
        for (event_type, category), count in list(self._ingested.items()):
            ingested.add_metric([event_type, category], count)
        yield ingested
        telemetry = self._telemetry
        health: dict[str, Any] = {}
        if telemetry is not None:
            try:
                health = telemetry.get_health_status()
            except Exception:
                health = {}
        events = health.get("events", {})
        errors = CounterMetricFamily("telemetry_errors", "Pipeline errors: invalid events and store failures",
                                     labels=["kind"])
        errors.add_metric(["pipeline"], self._errors)
        errors.add_metric(["store"], events.get("store_errors", 0))
        yield errors
        queue = health.get("queue", {})
        yield GaugeMetricFamily("telemetry_queue_depth", "Events waiting for the writer",
                                value=queue.get("depth", 0))
        yield GaugeMetricFamily("telemetry_queue_capacity", "Events the queue holds before backpressure",
                                value=queue.get("capacity", 0))
        dropped = CounterMetricFamily("telemetry_dropped_events", "Events dropped, by reason",
                                      labels=["reason"])
        for reason, count in health.get("dropped", {}).items():
            dropped.add_metric([reason], count)
        yield dropped
        yield CounterMetricFamily("telemetry_events_written", "Events written to the primary store",
                                  value=events.get("written", 0))
        yield from _exporter_families(health.get("exporters", []))
        from .reliability_metrics import reliability_families

        yield from reliability_families(health)  # breaker of a remote primary, spool, healthy (issue 13)
        if telemetry is not None:
            from .analytics_metrics import analytics_families

            yield from analytics_families(telemetry)  # rates, error rate, anomalies, alerts, cost (issue 10)
        hub = self._hub
        if hub is not None:
            yield GaugeMetricFamily("telemetry_stream_subscribers", "Open live-stream connections",
                                    value=len(hub.subscribers))
            yield CounterMetricFamily("telemetry_stream_messages_dropped",
                                      "Live-stream messages dropped for slow consumers",
                                      value=hub.dropped_total())
            yield CounterMetricFamily("telemetry_stream_messages_delivered",
                                      "Live-stream messages queued for delivery", value=hub.delivered)


_BREAKER_STATES = ("closed", "open", "half_open")


def _exporter_families(exporters: list[dict[str, Any]]) -> Iterator[Metric]:
    """Each exporter's lag, deliveries, failures and breaker state (one label: the exporter's name)."""
    lag = GaugeMetricFamily("telemetry_exporter_lag_events", "Committed events an exporter has not delivered yet",
                            labels=["exporter"])
    delivered = CounterMetricFamily("telemetry_exporter_delivered_events", "Events an exporter delivered",
                                    labels=["exporter"])
    failures = CounterMetricFamily("telemetry_exporter_failures", "Failed deliveries (each retried)",
                                   labels=["exporter"])
    breaker = GaugeMetricFamily("telemetry_exporter_breaker_state", "1 for the breaker's current state",
                                labels=["exporter", "state"])
    for status in exporters:
        name = str(status.get("name", "?"))
        lag.add_metric([name], float(status.get("lag") or 0))
        delivered.add_metric([name], float(status.get("delivered", 0)))
        failures.add_metric([name], float(status.get("failures", 0)))
        state = str(status.get("breaker", "closed")).replace("-", "_")
        for known in _BREAKER_STATES:
            breaker.add_metric([name, known], 1.0 if state == known else 0.0)
    yield from (lag, delivered, failures, breaker)


class _PipelineCollector(Collector):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.collect_pipeline()

    def describe(self) -> list[Metric]:
        return []


class HttpMetricsMiddleware:
    """Time every HTTP request, labelled by route template (not raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request and observe its latency."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_latency.labels(scope.get("method", "GET"), template, str(status)).observe(
                time.perf_counter() - started)
