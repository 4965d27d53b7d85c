"""The analytics engine through Telemetry on a real SQLite file: faults flagged, alerts fired and kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from analytics_workload import MIN, now_minute, workload

from vibekit_telemetry import Telemetry
from vibekit_telemetry.analytics.alerts import Alert, AlertManager, make_rule
from vibekit_telemetry.errors import ValidationError

Make = Callable[..., Telemetry]


def _load(t: Telemetry, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 2000):
        assert t.track_batch(events[i:i + 2000]) == len(events[i:i + 2000])
    assert t.flush()


def test_injected_faults_are_flagged_within_a_minute_and_alerted(make_telemetry: Make) -> None:
    end = now_minute()
    faults = end - 2 * MIN
    t = make_telemetry(analytics={"enabled": True, "interval_s": 3600})
    anomalies: list[Any] = []
    alerts: list[Alert] = []
    t.on("anomaly", anomalies.append)
    t.on("alert", alerts.append)
    _load(t, workload(end, faults_from=faults))
    t.set_alert_threshold("error_rate", 10, "above", "critical", category="codex", window="3m")

    t.runtime.scheduler.run_now("analytics")  # type: ignore[union-attr]  # the job the scheduler runs

    flagged = {(a.metric, a.timestamp) for a in anomalies}
    assert ("error_rate", faults) in flagged
    assert ("response_time", faults) in flagged
    # Nothing flagged on the normal hours before the faults.
    assert not [a for a in anomalies if a.timestamp < faults]
    kinds = {(a.kind, a.metric) for a in alerts}
    assert ("anomaly", "error_rate") in kinds and ("anomaly", "response_time") in kinds
    assert ("threshold", "error_rate") in kinds
    threshold = next(a for a in alerts if a.kind == "threshold")
    assert threshold.category == "codex" and threshold.value is not None and threshold.value > 10

    # A second evaluation finds nothing new: each anomaly once, alerts under cooldown / still open.
    alerts.clear()
    again = t.analytics.evaluate()
    assert again["anomalies"] == [] and again["alerts"] == [] and alerts == []

    # Alert history is persisted in the store: another Telemetry on the same file reads it.
    history_kinds = {(h["kind"], h["metric"]) for h in t.alert_history()}
    t.shutdown()
    other = make_telemetry()
    assert {(h["kind"], h["metric"]) for h in other.alert_history()} == history_kinds


def test_insights_name_the_failing_agent_with_evidence(make_telemetry: Make) -> None:
    end = now_minute()
    t = make_telemetry()
    _load(t, workload(end, minutes=120, faults_from=end - 30 * MIN))
    t.track_start("gemini", "chat", "never ends", session_id="abandoned-1",
                  timestamp=end - 90 * MIN)  # an abandoned session: no end for 90 minutes
    assert t.flush()
    insights = t.get_insights(time_range="1h")
    assert insights["available"] is True
    by_kind = {r["kind"]: r for r in insights["recommendations"]}
    increase = by_kind["error_rate_increase"]
    assert increase["evidence"]["agent"] == "codex"
    assert increase["evidence"]["error_rate"] > 2 * increase["evidence"]["previous_error_rate"]
    assert by_kind["abandoned_sessions"]["evidence"]["sample_session_ids"] == ["abandoned-1"]
    trends = {tr["metric"]: tr for tr in insights["trends"]}
    assert trends["error_rate"]["direction"] == "up" and "previous period" in trends["error_rate"]["evidence"]
    assert {a["metric"] for a in insights["anomalies"]} >= {"error_rate"}
    # One agent's view: only claude's numbers (its chunks slowed down, it has no errors).
    claude = t.get_insights(time_range="1h", categories=["claude"])
    assert [a["agent"] for a in claude["metrics"]["top_agents"]] == ["claude"]
    assert claude["metrics"]["errors"]["total"] == 0


def test_metrics_from_rollups_and_live_sketches(make_telemetry: Make) -> None:
    end = now_minute()
    t = make_telemetry()
    t.get_metrics()  # analytics on before the events: the live sketches see them
    _load(t, workload(end, minutes=30))
    m = t.get_metrics(time_range="1h")
    # 30 minutes x 2 agents x 2 sessions x 5 events, over a 60-minute window.
    assert m["events"]["total"] == 600 and m["events"]["per_minute"] == 10
    assert m["events"]["by_type"] == {"start": 120, "stream": 360, "end": 120}
    assert m["sessions"]["total"] == 120 and m["errors"]["rate"] == 0
    perf = m["performance"]
    assert 180 < perf["p50"] < 220 and perf["p50"] <= perf["p95"] <= perf["p99"] <= perf["max"]
    assert 190 < perf["avg_latency"] < 210
    ttfc = perf["time_to_first_chunk"]
    assert ttfc["count"] == 120 and ttfc["p50"] == pytest.approx(500, rel=0.02)
    assert {a["agent"] for a in m["top_agents"]} == {"claude", "codex"}
    assert m["throughput"]["peak_hour"] is not None


def test_token_usage_and_cost_per_agent_model_and_session(make_telemetry: Make) -> None:
    t = make_telemetry(analytics={"prices": {"acme-1": [1.0, 2.0]}})
    t.get_metrics()
    sid = t.track_start("claude", "code", "hello")
    t.track_stream(sid, "partial")
    # The final chunk of a streamed response carries the usage, as the providers' APIs send it.
    t.track({"event_type": "stream", "session_id": sid, "stream_data": "",
             "metadata": {"model": "acme-1", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 500_000}}})
    t.track({"event_type": "custom", "category": "codex", "metadata": {"model": "gpt-4o", "input_tokens": 2_000,
                                                                      "output_tokens": 1_000}})
    t.track_end(sid)
    assert t.flush()
    m = t.get_metrics()
    assert m["tokens"] == {"prompt": 1_002_000, "completion": 501_000, "total": 1_503_000}
    cost = m["cost"]
    assert cost["by_model"]["acme-1"] == pytest.approx(2.0)  # 1M x $1 + 0.5M x $2, the override
    assert cost["by_model"]["gpt-4o"] == pytest.approx((2_000 * 2.5 + 1_000 * 10) / 1e6)  # shipped table
    assert cost["by_agent"]["claude"] == pytest.approx(2.0)
    assert cost["top_sessions"][0] == {"session_id": sid, "usd": pytest.approx(2.0)}
    # "This agent spent more than $1 in the last hour."
    fired: list[Alert] = []
    t.on_alert(fired.append)
    t.set_alert_threshold("cost", 1.0, "above", "critical", category="claude", window="1h")
    t.set_alert_threshold("cost", 1.0, "above", "critical", category="codex", window="1h")
    t.analytics.evaluate()
    assert [(a.metric, a.category) for a in fired if a.kind == "threshold"] == [("cost", "claude")]


def test_custom_metrics_from_events_and_record_metric(make_telemetry: Make) -> None:
    t = make_telemetry()
    t.define_metric(name="token_usage", type="counter", unit="tokens", description="tokens per call")
    t.define_metric(name="queue_depth", type="gauge")
    t.track({"event_type": "custom", "category": "claude", "metadata": {"token_usage": 120}})
    t.track({"event_type": "custom", "category": "claude", "metadata": {"token_usage": 80}})
    assert t.flush()
    t.record_metric("queue_depth", 7)
    custom = t.get_metrics()["custom"]
    assert custom["token_usage"]["sum"] == 200 and custom["token_usage"]["unit"] == "tokens"
    assert custom["queue_depth"]["value"] == 7
    with pytest.raises(ValidationError, match="type: expected counter or gauge or histogram"):
        t.define_metric(name="x", type="meter")
    with pytest.raises(ValidationError, match="name: expected a metric defined"):
        t.record_metric("nope", 1)


@pytest.mark.parametrize(("call", "field"), [
    (lambda t: t.get_metrics(time_range="forever"), "time_range"),
    (lambda t: t.get_insights(categories=[3]), "categories"),
    (lambda t: t.set_alert_threshold("error_rate", 5, "sideways"), "direction"),
    (lambda t: t.set_alert_threshold("error_rate", "5"), "threshold"),
    (lambda t: t.set_alert_threshold("error_rate", 5, severity="doom"), "severity"),
    (lambda t: t.detect_anomalies(["cpu"]), "metrics"),
    (lambda t: t.detect_anomalies(sensitivity="max"), "sensitivity"),
    (lambda t: t.generate_predictions(minutes_ahead=0), "minutes_ahead"),
    (lambda t: t.add_alert_webhook("ftp://x"), "url"),
    (lambda t: t.start_monitoring("soon"), "interval"),
])
def test_bad_input_names_the_field(make_telemetry: Make, call: Callable[[Telemetry], Any], field: str) -> None:
    t = make_telemetry()
    with pytest.raises(ValidationError) as info:
        call(t)
    assert info.value.field == field


def test_threshold_alerts_once_per_crossing_then_after_cooldown() -> None:
    sent: list[Alert] = []
    manager = AlertManager(log=False)
    manager.callbacks.append(sent.append)
    rule = manager.add_rule(make_rule("error_rate", 5, "above", "critical", cooldown_s=0))
    assert manager.check_threshold(rule, 9.0) is not None
    assert manager.check_threshold(rule, 12.0) is None  # still the same crossing: de-duplicated
    assert manager.check_threshold(rule, 1.0) is None   # back to normal
    assert manager.check_threshold(rule, 8.0) is not None  # a new crossing
    cooled = manager.add_rule(make_rule("throughput", 100, "below", cooldown_s=3600))
    assert manager.check_threshold(cooled, 5.0) is not None
    manager.check_threshold(cooled, 500.0)
    assert manager.check_threshold(cooled, 5.0) is None  # within the cooldown
    assert [a.metric for a in sent] == ["error_rate", "error_rate", "throughput"]


def test_predictions_carry_intervals_and_backtest(make_telemetry: Make) -> None:
    t = make_telemetry()
    _load(t, workload(now_minute(), minutes=90))
    result = t.generate_predictions(["response_time", "throughput"], minutes_ahead=15)
    for name in ("response_time", "throughput"):
        f = result[name]
        assert len(f["values"]) == 15
        assert all(lo <= v <= hi for v, lo, hi in zip(f["values"], f["lower"], f["upper"], strict=True))
        assert f["backtest"]["points"] == 15 and f["backtest"]["mae"] is not None
    assert 150 < result["response_time"]["values"][0] < 250


def test_start_monitoring_registers_the_scheduled_job(make_telemetry: Make) -> None:
    t = make_telemetry()
    t.start_monitoring("2h")
    status = t.runtime.scheduler.status()  # type: ignore[union-attr]
    assert status["analytics"]["interval_s"] == 7200


@pytest.mark.parametrize(("rule", "field"), [
    ({"metric": "error_rate", "threshold": 5, "direction": "up"}, "analytics.thresholds[0].direction"),
    ({"metric": "error_rate", "threshold": 5, "windw": "5m"}, "analytics.thresholds[0].windw"),
    ({"metric": "error_rate"}, "analytics.thresholds[0].threshold"),
])
def test_bad_configured_rules_fail_at_construction(make_telemetry: Make, rule: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        make_telemetry(analytics={"enabled": True, "thresholds": [rule]})


def test_seed_config_blocks_map_onto_the_engine(make_telemetry: Make) -> None:
    t = make_telemetry(analytics={"enabled": True, "metrics": {"enabled": True, "interval": 5000},
                                  "anomaly": {"enabled": True, "sensitivity": "high", "metrics": ["error_rate"]},
                                  "alerts": {"channels": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]}})
    assert t.runtime.scheduler.status()["analytics"]["interval_s"] == 5  # type: ignore[union-attr]
    assert (t.analytics.sensitivity, t.analytics.monitored) == ("high", ["error_rate"])
    assert [h.url for h in t.analytics.alerts.webhooks] == ["http://127.0.0.1:9/x"]
