"""`telemetry sessions` and `telemetry session <id>`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cli_support import T0, Dataset, Run, as_json


def test_sessions_lists_newest_first(run: Run, seeded: Dataset) -> None:
    sessions = as_json(run("sessions", "--format", "json"))
    assert [s["id"] for s in sessions] == [seeded.claude_late, seeded.gemini, seeded.codex, seeded.claude]
    assert sessions[-1]["status"] == "completed" and sessions[-1]["event_count"] == 4
    assert sessions[-1]["stream_count"] == 2 and sessions[-1]["duration"] == 60_000
    table = run("sessions")
    assert table.exit_code == 0 and seeded.codex in table.stdout and "1m 0s" in table.stdout


def test_sessions_filters(run: Run, seeded: Dataset) -> None:
    assert [s["id"] for s in as_json(run("sessions", "--status", "active", "--format", "json"))] == [
        seeded.gemini]
    claude = as_json(run("sessions", "--agent", "claude", "--format", "json"))
    assert {s["id"] for s in claude} == {seeded.claude, seeded.claude_late}
    errors = as_json(run("sessions", "--with-errors", "--format", "json"))
    assert {s["id"] for s in errors} == {seeded.codex, seeded.gemini}
    recent = as_json(run("sessions", "--since", "2024-01-11", "--format", "json"))
    assert {s["id"] for s in recent} == {seeded.gemini, seeded.claude_late}
    assert len(as_json(run("sessions", "--limit", "1", "--format", "json"))) == 1
    both = as_json(run("sessions", "--status", "completed,error", "--format", "json"))
    assert len(both) == 3


def test_sessions_csv_with_fields(run: Run, seeded: Dataset) -> None:
    result = run("sessions", "--format", "csv", "--fields", "sessionId,agentType,errorCount",
                 "--order", "asc")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["id", "category", "error_count"]
    assert rows[1] == [seeded.claude, "claude", "0"]


def test_sessions_bad_status_is_a_usage_error(run: Run, seeded: Dataset) -> None:
    result = run("sessions", "--status", "sleeping")
    assert result.exit_code == 2 and "status" in result.output


def test_session_details(run: Run, seeded: Dataset) -> None:
    result = run("session", seeded.codex)
    assert result.exit_code == 0, result.output
    for text in (seeded.codex, "codex", "chat", "error", "Explain regexes", "2024-01-10 13:00:00"):
        assert text in result.stdout
    data = as_json(run("session", seeded.codex, "--format", "json"))
    assert data["id"] == seeded.codex and data["error_count"] == 1 and "events" not in data


def test_session_with_events(run: Run, seeded: Dataset) -> None:
    data = as_json(run("session", seeded.claude, "--with-events", "--format", "json"))
    assert [e["event_type"] for e in data["events"]] == ["start", "stream", "stream", "end"]
    assert data["events"][0]["timestamp"] == T0
    table = run("session", seeded.claude, "--with-events")
    assert table.exit_code == 0 and "Found the needle" in table.stdout
    trimmed = as_json(run("session", seeded.claude, "--with-events", "--format", "json",
                          "--fields", "eventType"))
    assert trimmed["events"][0] == {"event_type": "start"}
    result = run("session", seeded.claude, "--with-events", "--format", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 5


def test_unknown_session_exits_1(run: Run, seeded: Dataset) -> None:
    result = run("session", "no-such-session")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: no session 'no-such-session' "
                                                  "(list them with `telemetry sessions`)"]


def test_session_latest_is_the_newest(run: Run, seeded: Dataset, tmp_path: Path) -> None:
    data = as_json(run("session", "latest", "--format", "json"))
    assert data["id"] == seeded.claude_late
    empty = tmp_path / "empty.db"
    assert run("db", "init", db=empty).exit_code == 0
    result = run("session", "latest", db=empty)
    assert result.exit_code == 1 and "no session 'latest'" in result.output
