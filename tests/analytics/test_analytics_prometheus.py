"""/metrics of a real server carries the analytics results, parsed with prometheus_client's own parser."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from analytics_workload import MIN, now_minute, workload
from prometheus_client.parser import text_string_to_metric_families

from vibekit_telemetry import Telemetry
from vibekit_telemetry.analytics.alerts import Alert
from vibekit_telemetry.analytics.pricing import Pricing
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.store.base import BaseStorageProvider

Make = Callable[..., Telemetry]
MODEL = "claude-sonnet-4"


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> labels -> value."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_endpoint_exports_rates_anomalies_alerts_cost_and_sessions(make_telemetry: Make) -> None:
    end = now_minute()
    t = make_telemetry(analytics={"enabled": True, "interval_s": 3600})
    anomalies: list[Any] = []
    alerts: list[Alert] = []
    t.on("anomaly", anomalies.append)
    t.on("alert", alerts.append)
    events = workload(end, minutes=90, faults_from=end - 2 * MIN)
    usage = {"model": MODEL, "usage": {"prompt_tokens": 1000, "completion_tokens": 400}}
    events += [{"event_type": "stream", "session_id": f"claude-89-{k}", "category": "claude", "stream_data": "x",
                "timestamp": end - MIN + 30_000 + k, "metadata": usage} for k in range(2)]
    events.append({"event_type": "start", "session_id": "open-1", "category": "gemini", "action": "chat",
                   "timestamp": end - 10 * MIN})
    for i in range(0, len(events), 2000):
        assert t.track_batch(events[i:i + 2000]) == len(events[i:i + 2000])
    assert t.flush()
    t.set_alert_threshold("error_rate", 10, "above", "critical", category="codex", window="3m")
    t.runtime.scheduler.run_now("analytics")  # type: ignore[union-attr]  # the scheduled evaluation
    assert anomalies and any(a.kind == "threshold" for a in alerts)

    server = t.start_api_server(port=0)
    try:
        for _ in range(3):  # the 5-minute window must not move between the scrape and the expectation
            minute = int(time.time() * 1000) // MIN
            scraped = _scrape(server.url)
            expected = t.get_metrics("5m")
            if int(time.time() * 1000) // MIN == minute:
                break
    finally:
        server.stop()

    def value(name: str, **labels: str) -> float:
        return scraped[name][tuple(sorted(labels.items()))]

    assert value("telemetry_analytics_events_per_minute") == expected["events"]["per_minute"] > 0
    assert value("telemetry_analytics_error_rate_percent") == expected["errors"]["rate"] > 10
    assert value("telemetry_analytics_latency_ms", quantile="0.95") == expected["performance"]["p95"]
    assert value("telemetry_analytics_active_sessions", agent="gemini") == 1
    # Counters: what the evaluation found and fired, each by its labels.
    found = Counter((a.metric, a.severity) for a in anomalies)
    assert {k: v for k, v in scraped["telemetry_analytics_anomalies_detected_total"].items()} == {
        (("metric", m), ("severity", s)): float(n) for (m, s), n in found.items()}
    fired = Counter((a.kind, a.severity) for a in alerts)
    assert value("telemetry_analytics_alerts_fired_total", kind="threshold", severity="critical") == \
        fired[("threshold", "critical")] == 1
    assert sum(scraped["telemetry_analytics_alerts_fired_total"].values()) == len(alerts)
    assert value("telemetry_analytics_evaluations_total") == 1
    # Cost and tokens from the shipped price table, by agent and model.
    assert value("telemetry_analytics_tokens_total", agent="claude", model=MODEL, kind="prompt") == 2000
    assert value("telemetry_analytics_tokens_total", agent="claude", model=MODEL, kind="completion") == 800
    assert abs(value("telemetry_analytics_cost_usd_total", agent="claude", model=MODEL)
               - 2 * Pricing().cost(MODEL, 1000, 400)) < 1e-9
    assert Pricing().cost(MODEL, 1000, 400) > 0


class _WriteOnly(BaseStorageProvider):
    """A user's write-only provider: no reads, so no rollup windows."""

    def store_batch(self, events: Sequence[TelemetryEvent]) -> None:
        """Accept and forget."""


def test_metrics_endpoint_with_a_write_only_store_still_answers(make_telemetry: Make) -> None:
    t = make_telemetry(storage=[_WriteOnly()])
    server = t.start_api_server(port=0)
    try:
        scraped = _scrape(server.url)
    finally:
        server.stop()
    assert "telemetry_queue_depth" in scraped  # the scrape answered
    assert "telemetry_analytics_events_per_minute" not in scraped  # gauges need rollup reads
    assert scraped["telemetry_analytics_evaluations_total"][()] == 0  # counters still go out
