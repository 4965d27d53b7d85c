"""`init`, `clear`/`clean`, `vacuum`, `reindex`, `check`, and failures that must stay one line."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

from cli_support import DAY, T0, Dataset, Run, as_json


def _count(db_file: Path, table: str = "events") -> int:
    with sqlite3.connect(db_file) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _audit_actions(db_file: Path) -> list[str]:
    with sqlite3.connect(db_file) as conn:
        return [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]


def test_init_writes_config_and_creates_database(run: Run, db_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "conf" / "telemetry.toml"
    result = run("init", "--path", str(config))
    assert result.exit_code == 0, result.output
    assert db_file.exists() and _count(db_file) == 0
    text = config.read_text()
    assert text.lstrip().startswith("#")
    assert tomllib.loads(text)["telemetry"]["db_path"] == str(db_file)
    again = run("init", "--path", str(config))
    assert again.exit_code == 1 and "--force" in again.output
    assert run("init", "--path", str(config), "--force").exit_code == 0


def test_init_default_path_and_config_is_used_afterwards(run: Run, tmp_path: Path) -> None:
    result = run("init", db=None)
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".vibekit" / "telemetry.toml").is_file()
    assert (tmp_path / ".vibekit" / "telemetry.db").is_file()
    assert run("demo", "--sessions", "2", "--seed", "4", db=None).exit_code == 0
    stats = as_json(run("stats", "--format", "json", db=None))
    assert stats["total_sessions"] == 2


def test_clear_asks_and_refusing_deletes_nothing(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("clear", input="n\n")
    assert result.exit_code == 1
    assert "Delete ALL events" in result.output and "Aborted" in result.output
    assert _count(db_file) == 14 and _count(db_file, "sessions") == 4
    result = run("clear", "--agent", "codex")  # no input at all: the prompt aborts
    assert result.exit_code == 1 and _count(db_file) == 14


def test_clear_confirmed_deletes_by_agent_and_records_audit(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("clear", "--agent", "codex", input="y\n")
    assert result.exit_code == 0, result.output
    assert "Deleted 4 events." in result.stdout
    assert _count(db_file) == 10 and _count(db_file, "sessions") == 3
    assert "delete" in _audit_actions(db_file)


def test_clear_force_by_session_and_everything(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("clear", "--session", seeded.gemini, "--force", "--format", "json")
    assert as_json(result)["deleted"] == 3
    result = run("clear", "--force", "--vacuum")
    assert result.exit_code == 0 and "Deleted 11 events." in result.stdout and "Vacuumed" in result.stdout
    assert _count(db_file) == 0 and _count(db_file, "sessions") == 0


def test_clear_older_than(run: Run, seeded: Dataset, db_file: Path) -> None:
    # Everything in the dataset is from January 2024, so "older than 7d" is all of it.
    assert as_json(run("clear", "--older-than", "7d", "-f", "--format", "json"))["deleted"] == 14


def test_clean_days_and_month_phrases(run: Run, db_file: Path) -> None:
    from vibekit_telemetry.events import now_ms
    from vibekit_telemetry.service import Telemetry

    db_file.parent.mkdir(parents=True)
    now = now_ms()
    with Telemetry(db_path=str(db_file)) as telemetry:
        telemetry.track_batch([{"event_type": "custom", "category": "old", "timestamp": now - 40 * DAY},
                               {"event_type": "custom", "category": "mid", "timestamp": now - 10 * DAY},
                               {"event_type": "custom", "category": "new", "timestamp": now - 1000}])
    assert as_json(run("clean", "--days", "30", "--force", "--format", "json"))["deleted"] == 1
    assert as_json(run("clean", "--older-than", "1 week", "--force", "--format", "json"))["deleted"] == 1
    assert as_json(run("dump", "--format", "json", "--fields", "category")) == [{"category": "new"}]
    assert as_json(run("clear", "--older-than", "1 month", "-f", "--format", "json"))["deleted"] == 0


def test_clear_bad_age_is_a_usage_error(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("clear", "--older-than", "a while", "--force")
    assert result.exit_code == 2 and "--older-than" in result.output
    assert run("clean", "--days", "3", "--older-than", "3d", "--force").exit_code == 2
    assert _count(db_file) == 14


def test_vacuum_reindex_check(run: Run, seeded: Dataset, db_file: Path) -> None:
    result = run("vacuum")
    assert result.exit_code == 0 and "Vacuumed" in result.stdout
    sizes = as_json(run("vacuum", "--format", "json"))
    assert sizes["size_after"] > 0
    assert run("reindex").stdout.strip() == "Indexes rebuilt."
    assert as_json(run("reindex", "--format", "json")) == {"reindexed": True}
    assert run("check").stdout.strip() == "OK: no problems found."
    assert as_json(run("check", "--format", "json")) == {"ok": True, "problems": []}
    assert _count(db_file) == 14


def test_check_reports_problems_with_exit_1(run: Run, seeded: Dataset, db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("INSERT INTO events (event_id, session_id, event_type, category, timestamp) "
                     "VALUES ('orphan', 'no-such-session', 'custom', 'x', ?)", (T0,))
    result = run("check", "--format", "json")
    assert result.exit_code == 1
    report = as_json_any(result.stdout)
    assert report["ok"] is False and any("foreign key" in p for p in report["problems"])
    table = run("check")
    assert table.exit_code == 1 and "foreign key" in table.stdout


def as_json_any(text: str) -> Any:
    """Parse stdout whatever the exit code."""
    return json.loads(text)


def test_corrupt_database_is_one_line_error(run: Run, db_file: Path) -> None:
    db_file.parent.mkdir(parents=True)
    db_file.write_bytes(b"this is not a database, just some text " * 200)
    for args in (["stats"], ["dump"], ["sessions"], ["check"], ["query", "SELECT 1"], ["db", "status"],
                 ["clear", "--force"], ["demo", "--sessions", "1"], ["health"]):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "not a SQLite database" in lines[0], (
            args, result.output)
        assert "Traceback" not in result.output


def test_damaged_sqlite_file_is_one_line_error(run: Run, seeded: Dataset, db_file: Path) -> None:
    data = bytearray(db_file.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the schema page
    db_file.write_bytes(bytes(data))
    for path in (db_file.with_name(db_file.name + "-wal"), db_file.with_name(db_file.name + "-shm")):
        path.unlink(missing_ok=True)
    result = run("stats")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")


def test_directory_instead_of_file(run: Run, tmp_path: Path) -> None:
    result = run("stats", db=tmp_path)
    assert result.exit_code == 1 and "directory" in result.output
