"""`telemetry stats` and `telemetry health`."""

from __future__ import annotations

from cli_support import Dataset, Run, as_json


def test_stats_table_looks_like_the_seed(run: Run, seeded: Dataset) -> None:
    result = run("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Total Events: 14" in " ".join(out.split()) or "Total Events:" in out
    for label in ("Total Events:", "Sessions:", "Agents:", "Date Range:", "Database Size:",
                  "Average Session Duration:"):
        assert label in out
    assert "claude (50%), codex (29%), gemini (21%)" in out
    assert "2024-01-10 to 2024-01-12" in out
    assert " MB" in out or " KB" in out


def test_stats_json(run: Run, seeded: Dataset) -> None:
    stats = as_json(run("stats", "--format", "json"))
    assert stats["total_events"] == 14 and stats["total_sessions"] == 4
    assert stats["agents"] == {"claude": 7, "codex": 4, "gemini": 3}
    assert abs(stats["agent_shares"]["claude"] - 0.5) < 1e-9
    assert stats["database_size_bytes"] > 0


def test_stats_filters_and_group_by(run: Run, seeded: Dataset) -> None:
    claude = as_json(run("stats", "--agent", "claude", "--format", "json"))
    assert claude["total_events"] == 7 and list(claude["agents"]) == ["claude"]
    recent = as_json(run("stats", "--from", "2024-01-11", "--format", "json"))
    assert recent["total_events"] == 6
    grouped = as_json(run("stats", "--group-by", "event_type", "--format", "json"))
    assert {g["key"]: g["events"] for g in grouped["groups"]} == {"start": 4, "stream": 4, "end": 3,
                                                                  "error": 3}
    table = run("stats", "--group-by", "mode")
    assert table.exit_code == 0 and "By action" in table.stdout and "chat" in table.stdout


def test_stats_performance(run: Run, seeded: Dataset) -> None:
    stats = as_json(run("stats", "--performance", "--format", "json"))
    assert "stats_query_ms" in stats["performance"] and "writer" in stats["performance"]
    table = run("stats", "--performance")
    assert table.exit_code == 0 and "Performance" in table.stdout and "writer.batches" in table.stdout


def test_stats_bad_input(run: Run, seeded: Dataset) -> None:
    result = run("stats", "--from", "next blursday")
    assert result.exit_code == 2 and "--from" in result.output
    result = run("stats", "--group-by", "colour")
    assert result.exit_code == 2 and "group_by" in result.output
    assert run("stats", "--format", "csv").exit_code == 2


def test_stats_on_missing_database_is_a_clear_error(run: Run) -> None:
    result = run("stats")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no telemetry database at ")
    assert len(result.output.strip().splitlines()) == 1


def test_health(run: Run, seeded: Dataset) -> None:
    result = run("health")
    assert result.exit_code == 0, result.output
    assert "Status: healthy" in result.stdout
    detailed = run("health", "--detailed")
    assert "writer.alive" in detailed.stdout
    report = as_json(run("health", "--detailed", "--format", "json"))
    assert report["status"] == "healthy" and "writer" in report and "stores" in report
    summary = as_json(run("health", "--format", "json"))
    assert summary["status"] == "healthy"
