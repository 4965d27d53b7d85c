"""`telemetry stats` and `telemetry health`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cli_support import Dataset, Run, as_json

from vibekit_telemetry.service import Telemetry


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


def test_stats_performance_shows_what_another_process_wrote(run: Run, db_file: Path) -> None:
    db_file.parent.mkdir(parents=True)
    telemetry = Telemetry(db_path=str(db_file), writer_stats_interval_s=0.1, stream_flush_interval_ms=20,
                          service_name="perf-agent", service_version="2.0")
    sid = telemetry.track_start("claude", "code", "p")
    for i in range(40):
        telemetry.track_stream(sid, f"chunk {i}")
        if i == 20:
            assert telemetry.flush(10)
            time.sleep(0.15)  # past writer_stats_interval_s: the next batch records the run again
    telemetry.track_end(sid)
    telemetry.shutdown()

    perf = as_json(run("stats", "--performance", "--format", "json"))["performance"]
    (writer,) = perf["writer_runs"]
    assert writer["service_name"] == "perf-agent" and writer["service_version"] == "2.0"
    assert writer["events_written"] == 42 and writer["dropped"] == 0
    assert writer["pid"] == os.getpid() and writer["host"]
    assert writer["batches"] >= 2 and writer["max_batch_ms"] >= writer["avg_batch_ms"] > 0
    assert writer["queue_capacity"] == 50_000 and writer["queue_depth"] == 0
    assert writer["updated_at"] - writer["started_at"] >= 150 and writer["events_per_s"] > 0
    assert perf["store"]["database_size_bytes"] > 0 and perf["store"]["stats_query_ms"] > 0
    assert perf["store"]["queries_per_s"] > 0
    # The stats command's own writer wrote nothing, so it recorded no run.
    assert len(as_json(run("stats", "--performance", "--format", "json"))["performance"]["writer_runs"]) == 1

    table = run("stats", "--performance")
    assert table.exit_code == 0, table.output
    out = table.stdout
    assert "Performance" in out and "perf-agent 2.0" in out and f"/{os.getpid()}" in out
    assert "max flush ms" in out and "0/50,000" in out and "queries/s" in out


def test_stats_performance_window(run: Run, seeded: Dataset) -> None:
    # `seeded` wrote its events through a writer a moment ago: it is in the last 24 h.
    (writer,) = as_json(run("stats", "--performance", "--format", "json"))["performance"]["writer_runs"]
    assert writer["events_written"] == 14
    # --from narrows the writers too (and the events): a window in the future holds none of them.
    later = as_json(run("stats", "--performance", "--from", "2099-01-01", "--format", "json"))
    assert later["performance"]["writer_runs"] == []
    table = run("stats", "--performance", "--from", "2099-01-01")
    assert table.exit_code == 0 and "no writer has recorded metrics in this window" in table.stdout


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
    assert "store.reachable" in result.stdout
    detailed = run("health", "--detailed")
    assert "writers.seen_last_24h" in detailed.stdout
    report = as_json(run("health", "--detailed", "--format", "json"))
    assert report["status"] == "healthy" and "stores" in report
    # The Telemetry that seeded the database recorded its writer's metrics; health runs no writer,
    # so asking again (three commands later) finds the same writers.
    seen = report["writers"]["seen_last_24h"]
    assert seen >= 1 and as_json(run("health", "--detailed", "--format", "json"))["writers"]["seen_last_24h"] == seen
    summary = as_json(run("health", "--format", "json"))
    assert summary["status"] == "healthy" and "runs" not in summary["writers"]
