"""`telemetry dump` and `telemetry query`: filters, formats, fields, read-only SQL, canned questions."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

from cli_support import DAY, T0, Dataset, Run, as_json


def test_dump_json_returns_every_event_with_every_field(run: Run, seeded: Dataset) -> None:
    events = as_json(run("dump", "--format", "json"))
    assert len(events) == 14
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    first = events[0]
    assert first["event_type"] == "start" and first["category"] == "claude"
    assert first["metadata"] == {"model": "sonnet", "priority": "high"}
    assert {"event_id", "session_id", "stream_data", "label", "context", "service_name"} <= set(first)


def test_dump_table_is_human_readable_and_does_not_read_markup(run: Run, seeded: Dataset) -> None:
    result = run("dump")
    assert result.exit_code == 0, result.output
    assert "event_type" in result.stdout and "claude" in result.stdout
    assert "2024-01-10 12:00:00" in result.stdout  # timestamps shown as UTC date-times
    assert "[bold]the code[/bold]" in result.stdout  # stream text printed literally


def test_dump_csv_has_a_header_and_one_row_per_event(run: Run, seeded: Dataset) -> None:
    result = run("dump", "--format", "csv", "--type", "start")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 4
    assert rows[0]["category"] == "claude"
    assert rows[0]["metadata"] == '{"model":"sonnet","priority":"high"}'


def test_fields_accept_camel_case_and_aliases_in_order(run: Run, seeded: Dataset) -> None:
    events = as_json(run("dump", "--format", "json", "--fields", "sessionId,agentType,timestamp"))
    assert list(events[0]) == ["session_id", "category", "timestamp"]
    rows = list(csv.reader(io.StringIO(run("dump", "--format", "csv", "--fields", "event_type",
                                           "--fields", "mode").stdout)))
    assert rows[0] == ["event_type", "action"]


def test_exclude_drops_fields_in_any_spelling(run: Run, seeded: Dataset) -> None:
    events = as_json(run("dump", "--format", "json", "--exclude", "streamData,metadata"))
    assert "stream_data" not in events[0] and "metadata" not in events[0]
    assert "session_id" in events[0]
    result = run("dump", "--exclude", "stream_data")
    assert result.exit_code == 0 and "stream_data" not in result.stdout


def test_unknown_field_is_a_usage_error(run: Run, seeded: Dataset) -> None:
    result = run("dump", "--fields", "session_id,nonsense")
    assert result.exit_code == 2
    assert "nonsense" in result.output and "--fields" in result.output


def test_filters_by_agent_type_mode_and_session(run: Run, seeded: Dataset) -> None:
    assert len(as_json(run("dump", "--format", "json", "--agent", "claude"))) == 7
    assert len(as_json(run("dump", "--format", "json", "--category", "claude", "--mode", "chat"))) == 3
    assert len(as_json(run("dump", "--format", "json", "--type", "error"))) == 3
    assert len(as_json(run("dump", "--format", "json", "--event-type", "stream", "--type", "end"))) == 7
    both = as_json(run("dump", "--format", "json", "--session", f"{seeded.claude},{seeded.codex}"))
    assert {e["session_id"] for e in both} == {seeded.claude, seeded.codex}
    repeated = as_json(run("dump", "--format", "json", "--session", seeded.claude,
                           "--session", seeded.gemini))
    assert {e["session_id"] for e in repeated} == {seeded.claude, seeded.gemini}


def test_filters_by_time_text_and_metadata(run: Run, seeded: Dataset) -> None:
    since_day_two = as_json(run("dump", "--format", "json", "--from", "2024-01-11"))
    assert len(since_day_two) == 6 and all(e["timestamp"] >= T0 + DAY - 12 * 3_600_000 for e in since_day_two)
    window = as_json(run("dump", "--format", "json", "--since", str(T0), "--until", str(T0 + 60_000)))
    assert len(window) == 4
    assert len(as_json(run("dump", "--format", "json", "--to", "2024-01-10T12:30:00Z"))) == 4
    found = as_json(run("dump", "--format", "json", "--contains", "needle"))
    assert [e["stream_data"] for e in found] == ["Found the needle"]
    assert len(as_json(run("dump", "--format", "json", "--meta", "model=gpt"))) == 1
    assert len(as_json(run("dump", "--format", "json", "--meta", "chunk=2"))) == 1
    assert as_json(run("dump", "--format", "json", "--meta", "model=none-such")) == []


def test_limit_offset_and_order(run: Run, seeded: Dataset) -> None:
    newest = as_json(run("dump", "--format", "json", "--order", "desc", "--limit", "2"))
    assert len(newest) == 2 and newest[0]["timestamp"] > newest[1]["timestamp"]
    assert newest[0]["timestamp"] == T0 + 2 * DAY + 600_000
    page = as_json(run("dump", "--format", "json", "--limit", "3", "--offset", "3"))
    everything = as_json(run("dump", "--format", "json"))
    assert page == everything[3:6]


def test_table_output_defaults_to_100_rows(run: Run, db_file: Path) -> None:
    from vibekit_telemetry.service import Telemetry

    db_file.parent.mkdir(parents=True)
    with Telemetry(db_path=str(db_file)) as telemetry:
        telemetry.track_batch([{"event_type": "custom", "category": "bulk", "timestamp": T0 + i}
                               for i in range(130)])
    assert len(as_json(run("dump", "--format", "json"))) == 130
    table = run("dump", "--fields", "timestamp,category")
    assert table.stdout.count("bulk") == 100


def test_bad_date_is_a_usage_error_naming_the_option(run: Run, seeded: Dataset) -> None:
    result = run("dump", "--from", "next blursday")
    assert result.exit_code == 2
    assert "--from" in result.output and "next blursday" in result.output
    assert "Traceback" not in result.output
    result = run("query", "--until", "soonish")
    assert result.exit_code == 2 and "--to" in result.output


def test_bad_event_type_and_meta_are_usage_errors(run: Run, seeded: Dataset) -> None:
    result = run("dump", "--type", "bogus")
    assert result.exit_code == 2 and "event_type" in result.output
    result = run("dump", "--meta", "no-equals-sign")
    assert result.exit_code == 2 and "--meta" in result.output
    result = run("dump", "--format", "xml")
    assert result.exit_code == 2


def test_json_output_of_no_match_is_an_empty_list(run: Run, seeded: Dataset) -> None:
    result = run("dump", "--format", "json", "--agent", "nobody")
    assert as_json(result) == []
    assert "No events match." in run("dump", "--agent", "nobody").stdout


def test_query_filters_like_dump(run: Run, seeded: Dataset) -> None:
    events = as_json(run("query", "--category", "claude", "--limit", "100", "--format", "json"))
    assert len(events) == 7
    result = run("query", "--since", "2024-01-12", "--until", "now", "--format", "table")
    assert result.exit_code == 0 and "Write docs" in result.stdout


def test_query_runs_read_only_sql(run: Run, seeded: Dataset) -> None:
    sql = "SELECT category, COUNT(*) AS n FROM events GROUP BY category ORDER BY category"
    rows = as_json(run("query", sql, "--format", "json"))
    assert rows == [{"category": "claude", "n": 7}, {"category": "codex", "n": 4},
                    {"category": "gemini", "n": 3}]
    table = run("query", "SELECT category, COUNT(*) FROM events GROUP BY category")
    assert table.exit_code == 0 and "COUNT(*)" in table.stdout and "claude" in table.stdout
    csv_rows = list(csv.reader(io.StringIO(run("query", "SELECT 1 AS a, 2 AS a", "--format", "csv").stdout)))
    assert csv_rows == [["a", "a_2"], ["1", "2"]]


def test_seed_003_sql_on_the_legacy_telemetry_view(run: Run, seeded: Dataset) -> None:
    sql = "SELECT agentType, COUNT(*) AS n FROM telemetry GROUP BY agentType ORDER BY agentType"
    rows = as_json(run("query", sql, "--format", "json"))
    assert rows == [{"agentType": "claude", "n": 7}, {"agentType": "codex", "n": 4},
                    {"agentType": "gemini", "n": 3}]


def test_query_sql_cannot_write(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("query", "DELETE FROM events")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "read" in result.output.lower()
    assert "Traceback" not in result.output
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 14
    bad = run("query", "SELECT nope FROM nowhere")
    assert bad.exit_code == 1 and "no such table" in bad.output


def test_query_sessions_with_errors(run: Run, seeded: Dataset) -> None:
    sessions = as_json(run("query", "--sessions-with-errors", "--format", "json"))
    assert {s["id"] for s in sessions} == {seeded.codex, seeded.gemini}
    table = run("query", "--sessions-with-errors")
    assert table.exit_code == 0 and "Sessions with errors" in table.stdout


def test_query_longest_sessions(run: Run, seeded: Dataset) -> None:
    sessions = as_json(run("query", "--longest-sessions", "--format", "json"))
    assert [s["id"] for s in sessions][:3] == [seeded.claude_late, seeded.claude, seeded.codex]
    assert len(as_json(run("query", "--longest-sessions", "--limit", "1", "--format", "json"))) == 1
    assert run("query", "--longest-sessions").exit_code == 0


def test_query_errors_grouped_by_label(run: Run, seeded: Dataset) -> None:
    groups = as_json(run("query", "--errors", "--group-by", "label", "--format", "json"))
    assert groups[0]["label"] == "API rate limit exceeded"
    assert groups[0]["count"] == 2 and groups[0]["sessions"] == 2
    assert groups[1]["label"] == "Sandbox timed out" and groups[1]["count"] == 1
    by_prompt = as_json(run("query", "--errors", "--group-by", "prompt", "--format", "json"))
    assert by_prompt == groups
    by_agent = as_json(run("query", "--errors", "--group-by", "agent", "--format", "json"))
    assert {g["category"]: g["count"] for g in by_agent} == {"gemini": 2, "codex": 1}
    errors = as_json(run("query", "--errors", "--format", "json"))
    assert len(errors) == 3 and {e["event_type"] for e in errors} == {"error"}


def test_query_rejects_conflicting_modes(run: Run, seeded: Dataset) -> None:
    assert run("query", "SELECT 1", "--longest-sessions").exit_code == 2
    assert run("query", "--group-by", "label").exit_code == 2
    result = run("query", "--errors", "--group-by", "colour")
    assert result.exit_code == 2 and "--group-by" in result.output
