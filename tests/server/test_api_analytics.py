"""/api/metrics, /api/insights, /api/anomalies, /api/predictions, /api/alerts on a real server.

The shapes asserted here are those docs/analytics.md documents for the dashboard."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analytics"))
from analytics_workload import MIN, now_minute, workload

from vibekit_telemetry import Telemetry


def _load(telemetry: Telemetry, faults: bool = True) -> int:
    end = now_minute()
    telemetry.get_metrics()  # analytics on: the live sketches see the events
    events = workload(end, minutes=90, faults_from=end - 2 * MIN if faults else None)
    for i in range(0, len(events), 2000):
        telemetry.track_batch(events[i:i + 2000])
    assert telemetry.flush()
    return end


def test_metrics_carry_the_analytics_object(client: httpx.Client, telemetry: Telemetry) -> None:
    _load(telemetry, faults=False)
    body = client.get("/api/metrics", params={"time_range": "1h"}).json()
    analytics = body["analytics"]
    assert analytics["events"]["total"] == 60 * 20 and analytics["events"]["per_minute"] == 20
    assert set(analytics) >= {"time_range", "events", "sessions", "errors", "performance", "throughput",
                              "top_agents", "tokens", "cost", "custom", "source"}
    assert analytics["performance"]["p95"] is not None
    assert {"stats", "pipeline", "streams"} <= set(body)  # what the route returned before stays
    codex = client.get("/api/metrics", params={"time_range": "1h", "category": "codex"}).json()["analytics"]
    assert [a["agent"] for a in codex["top_agents"]] == ["codex"]


def test_insights_and_anomalies_show_the_injected_faults(client: httpx.Client, telemetry: Telemetry) -> None:
    faults = _load(telemetry) - 2 * MIN
    insights = client.get("/api/insights", params={"time_range": "1h"}).json()
    assert insights["available"] is True
    assert {"metrics", "anomalies", "trends", "recommendations", "alerts"} <= set(insights)
    assert ("error_rate", faults) in {(a["metric"], a["timestamp"]) for a in insights["anomalies"]}
    found = client.get("/api/anomalies", params={"metric": "response_time", "time_range": "1h"}).json()["anomalies"]
    assert found and {a["metric"] for a in found} == {"response_time"}
    assert {"timestamp", "observed", "expected", "severity", "confidence", "description"} <= set(found[0])


def test_predictions_and_alert_history(client: httpx.Client, telemetry: Telemetry) -> None:
    _load(telemetry)
    predictions = client.get("/api/predictions", params={"metric": "throughput", "minutes_ahead": 5}).json()
    assert len(predictions["predictions"]["throughput"]["values"]) == 5
    telemetry.set_alert_threshold("error_rate", 10, "above", "critical", window="3m")
    telemetry.analytics.evaluate()
    alerts = client.get("/api/alerts").json()["alerts"]
    assert any(a["kind"] == "threshold" and a["metric"] == "error_rate" for a in alerts)


def test_bad_parameters_are_400_naming_the_field(client: httpx.Client) -> None:
    for path, params, field in [("/api/insights", {"time_range": "forever"}, "time_range"),
                                ("/api/anomalies", {"sensitivity": "max"}, "sensitivity"),
                                ("/api/anomalies", {"metric": "cpu"}, "metrics"),
                                ("/api/predictions", {"minutes_ahead": 0}, "minutes_ahead"),
                                ("/api/metrics", {"bogus": 1}, "bogus")]:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        assert field in response.text, (path, response.text)
