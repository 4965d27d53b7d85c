"""`telemetry metrics` and `telemetry analytics …` on a real SQLite file with a faulty demo workload."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_support import Run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "analytics"))
from analytics_workload import MIN, now_minute, workload

from vibekit_telemetry import Telemetry


@pytest.fixture
def faulty(db_file: Path) -> int:
    """90 minutes of two agents; from two minutes ago codex fails and claude slows down. Returns the fault time."""
    end = now_minute()
    with Telemetry(db_path=str(db_file)) as t:
        t.track({"event_type": "stream", "session_id": "codex-0-0", "category": "codex",
                 "metadata": {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}})
        events = workload(end, minutes=90, faults_from=end - 2 * MIN)
        for i in range(0, len(events), 2000):
            t.track_batch(events[i:i + 2000])
        assert t.flush()
    return end - 2 * MIN


def test_metrics_json_and_table(run: Run, faulty: int) -> None:
    result = run("metrics", "--since", "1h", "--format", "json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.output)
    assert m["events"]["total"] > 1000 and m["errors"]["total"] > 0
    assert m["performance"]["p95"] is not None  # rebuilt from the window's events in this process
    assert m["tokens"]["total"] == 1500 and m["cost"]["by_model"]["gpt-4o"] > 0
    table = run("metrics")
    assert table.exit_code == 0 and "Error rate" in table.output and "Latency avg / p50 / p95 / p99" in table.output


def test_report_names_the_faults(run: Run, faulty: int) -> None:
    result = run("analytics", "report", "--since", "7d", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert ("error_rate", faulty) in {(a["metric"], a["timestamp"]) for a in report["anomalies"]}
    table = run("analytics", "report", "--since", "1h")
    assert table.exit_code == 0 and "Recommendations" in table.output and "Anomalies" in table.output


def test_anomalies_by_sensitivity(run: Run, faulty: int) -> None:
    result = run("analytics", "anomalies", "--sensitivity", "high", "--format", "json")
    assert result.exit_code == 0, result.output
    metrics = {a["metric"] for a in json.loads(result.output)["anomalies"]}
    assert {"error_rate", "response_time"} <= metrics
    assert run("analytics", "anomalies", "--sensitivity", "extreme").exit_code == 2


def test_sessions_filtered_by_agent_and_status(run: Run, faulty: int) -> None:
    result = run("analytics", "sessions", "--agent", "claude", "--since", "24h", "--status", "completed",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["by_status"] == {"completed": 90 * 2}
    assert body["duration"]["p50"] == pytest.approx(2000, rel=0.02)
    assert all(s["category"] == "claude" for s in body["longest"])


def test_performance_alerts_on_a_threshold(run: Run, faulty: int) -> None:
    result = run("analytics", "performance", "--since", "5m", "--alerts", "--threshold", "response_time:500")
    assert result.exit_code == 0, result.output
    assert "ALERT [warning] response_time is" in result.output
    monitored = run("analytics", "performance", "--monitor", "--interval", "1s", "--iterations", "2",
                    "--format", "json")
    assert monitored.exit_code == 0 and monitored.output.count('"performance"') == 2
    assert run("analytics", "performance", "--threshold", "response_time").exit_code == 2


def test_dashboard_refreshes_and_predict(run: Run, faulty: int) -> None:
    result = run("analytics", "dashboard", "--iterations", "2", "--interval", "1s")
    assert result.exit_code == 0, result.output
    assert "Events" in result.output and "Top agents" in result.output
    predicted = run("analytics", "predict", "--metric", "throughput", "--minutes", "10", "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    assert len(json.loads(predicted.output)["throughput"]["values"]) == 10


def test_missing_database_is_a_clear_error(run: Run, tmp_path: Path) -> None:
    result = run("metrics", db=tmp_path / "nope.db")
    assert result.exit_code == 1 and "Error:" in result.output
