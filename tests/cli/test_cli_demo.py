"""`telemetry demo`: a simulated workload through the real SDK pipeline."""

from __future__ import annotations

from pathlib import Path

from cli_support import Run, as_json

from vibekit_telemetry.events import now_ms


def test_demo_writes_sessions_over_the_last_days(run: Run, db_file: Path) -> None:
    result = run("demo", "--sessions", "12", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Recorded 12 sessions, ") and len(result.stdout.strip().splitlines()) == 1
    stats = as_json(run("stats", "--format", "json"))
    assert stats["total_sessions"] == 12 and stats["total_events"] > 12 * 3
    assert len(stats["agents"]) >= 2
    assert stats["first_timestamp"] >= now_ms() - 3 * 86_400_000 - 60_000
    assert stats["last_timestamp"] <= now_ms()
    assert stats["last_timestamp"] - stats["first_timestamp"] > 3_600_000
    sessions = as_json(run("sessions", "--format", "json"))
    assert {s["action"] for s in sessions} <= {"code", "chat", "ask"}
    assert all(s["status"] in ("completed", "error") for s in sessions)
    assert all(s["event_count"] >= 3 for s in sessions)


def test_demo_seed_is_repeatable(run: Run, tmp_path: Path) -> None:
    first = as_json(run("demo", "--sessions", "20", "--seed", "3", "--format", "json", db=tmp_path / "a.db"))
    second = as_json(run("demo", "--sessions", "20", "--seed", "3", "--format", "json", db=tmp_path / "b.db"))
    assert first["agents"] == second["agents"] and first["events"] == second["events"]
    assert first["sessions"] == 20
    stats = as_json(run("stats", "--format", "json", db=tmp_path / "a.db"))
    assert stats["total_events"] == first["events"] and stats["error_events"] == first["errors"]


def test_demo_rejects_bad_counts(run: Run) -> None:
    assert run("demo", "--sessions", "0").exit_code == 2
    assert run("demo", "--sessions", "many").exit_code == 2
