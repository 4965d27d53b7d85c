"""`telemetry lake`: answers over known batches, SQL, export, and load into the store (twice adds nothing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from usage_support import payload

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.usage.batcher import UsageBatcher
from vibekit_telemetry.usage.lake import Lake
from vibekit_telemetry.usage.payload import payload_id, to_raw_event

pytest.importorskip("duckdb", reason="DuckDB is not installed: pip install 'vibekit-telemetry[usage]'")
from vibekit_telemetry.events import TelemetryEvent


def _payloads() -> list[dict[str, Any]]:
    out = []
    # Day 1: user a runs plan 4 times (durations 100..400), one fails; user b runs repo once with openai.
    for i, ms in enumerate([100.0, 200.0, 300.0, 400.0]):
        extra: dict[str, Any] = {"hasError": True, "errorType": "ProviderError", "eventName": "command_error"} \
            if i == 3 else {}
        out.append(payload(userId="a", sessionId=f"a{i}", timestamp=f"2025-03-01T10:0{i}:00.000Z", duration=ms,
                           **extra))
    out.append(payload(userId="b", sessionId="b0", timestamp="2025-03-01T11:00:00.000Z", command="repo",
                       provider="openai", model="o3", promptTokens=10, completionTokens=1, toolVersion="1.3.0"))
    # Day 2: an opted-in user and a pending one.
    out.append(payload(userId="a", sessionId="a9", timestamp="2025-03-02T09:00:00.000Z"))
    out.append(payload(userId="anonymous_pending_prompt", sessionId="p0", timestamp="2025-03-02T09:30:00.000Z"))
    return out


@pytest.fixture
def batches(tmp_path: Path) -> Path:
    dest = tmp_path / "batches"
    batcher = UsageBatcher(str(dest), max_rows=3, max_age_s=3600)
    events = []
    for data in _payloads():
        raw = to_raw_event(data)
        events.append(TelemetryEvent("custom", "usage", action=raw["action"], timestamp=raw["timestamp"],
                                     metadata=raw["metadata"], event_id=payload_id(data)))
    batcher.export(events)
    batcher.shutdown()
    return dest


def test_stats_answer_seed_004s_questions(batches: Path) -> None:
    report = Lake(str(batches)).stats()
    assert [(str(r["day"]), r["commands"], r["errors"], r["active_users"]) for r in report["per_day"]] == [
        ("2025-03-01", 5, 1, 2), ("2025-03-02", 2, 0, 1)]  # the pending placeholder is not a user
    plan = next(r for r in report["commands"] if r["command"] == "plan")
    assert (plan["runs"], plan["errors"], plan["error_rate"]) == (6, 1, round(1 / 6, 4))
    assert report["errors"] == [{"command": "plan", "error_type": "ProviderError", "count": 1}]
    tokens = {(r["provider"], r["model"]): r for r in report["tokens"]}
    assert tokens[("openai", "o3")]["prompt_tokens"] == 10
    assert tokens[("gemini", "gemini-2.5-pro")]["prompt_tokens"] == 6 * 1200
    assert {r["version"]: r["runs"] for r in report["versions"]} == {"1.4.0": 6, "1.3.0": 1}


def test_percentiles_and_since(batches: Path) -> None:
    _, rows = Lake(str(batches)).query(
        "SELECT quantile_cont(duration, 0.5), quantile_cont(duration, 0.95) FROM usage "
        "WHERE command = 'plan' AND CAST(ts AS DATE) = DATE '2025-03-01'")
    assert rows == [(250.0, 385.0)]
    since = Lake(str(batches), since_ms=1_740_873_600_000)  # 2025-03-02T00:00Z
    assert since.query("SELECT count(*) FROM usage")[1] == [(2,)]
    # Partitions are by write time: one written before `since` holds nothing newer, and is not opened.
    old = batches / "dt=2025-03-01" / "hour=23"
    old.mkdir(parents=True)
    (old / "20250301T230000000Z-x.ndjson").write_text("not even JSON: never read\n")
    assert not any("dt=2025-03-01" in f for f in since.files())
    assert since.query("SELECT count(*) FROM usage")[1] == [(2,)]


def test_cli_stats_query_export(batches: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["lake", "stats", str(batches), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["per_day"][0]["commands"] == 5
    result = runner.invoke(cli, ["lake", "query", str(batches), "SELECT command, count(*) AS n FROM usage "
                                 "GROUP BY 1 ORDER BY 1", "--format", "csv"])
    assert result.exit_code == 0 and list(csv.reader(result.output.splitlines())) == [
        ["command", "n"], ["plan", "6"], ["repo", "1"]]
    result = runner.invoke(cli, ["lake", "query", str(batches), "SELEC nonsense"])
    assert result.exit_code == 1 and "query failed" in result.output
    out = tmp_path / "usage.ndjson"
    result = runner.invoke(cli, ["lake", "export", str(batches), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 7
    result = runner.invoke(cli, ["lake", "stats", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "source" in result.output


def test_load_into_the_store_twice_adds_nothing(batches: Path, tmp_path: Path) -> None:
    db = tmp_path / "main.db"
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["--db", str(db), "lake", "load", str(batches)])
        assert result.exit_code == 0, result.output
    telemetry = Telemetry(db_path=str(db))
    try:
        events = telemetry.query(category="usage", limit=100)
        assert sorted(e.metadata["usage"]["sessionId"] for e in events if e.metadata) == sorted(
            p["sessionId"] for p in _payloads())
    finally:
        telemetry.shutdown()
