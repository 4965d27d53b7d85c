"""The `db` group (migrations) and the `vibekit` aliases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_support import Dataset, Run, as_json

from vibekit_telemetry.cli import vibekit
from vibekit_telemetry.store.migrate import HEAD, REVISIONS


def _tables(db_file: Path) -> set[str]:
    with sqlite3.connect(db_file) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_db_init_and_status(run: Run, db_file: Path) -> None:
    missing = run("db", "status")
    assert missing.exit_code == 1 and "no telemetry database" in missing.output
    result = run("db", "init")
    assert result.exit_code == 0, result.output
    assert f"initialised at version {HEAD}" in result.stdout
    assert "already at version" in run("db", "init").stdout
    status = as_json(run("db", "status", "--format", "json"))
    assert status["current"] == HEAD and status["head"] == HEAD and status["pending"] == []
    table = run("db", "status")
    assert "Current version" in table.stdout and "up to date" in table.stdout


def test_db_migrate_step_by_step(run: Run, db_file: Path) -> None:
    first = as_json(run("db", "migrate", "--to-version", REVISIONS[0], "--format", "json"))
    assert first["current"] == REVISIONS[0] and first["pending"] == list(REVISIONS[1:])
    assert "rollups" not in _tables(db_file)
    result = run("db", "migrate")
    assert result.exit_code == 0 and f"-> {HEAD}" in result.stdout
    assert "rollups" in _tables(db_file)
    assert "Nothing to do" in run("db", "migrate").stdout
    backwards = run("db", "migrate", "--to-version", REVISIONS[0])
    assert backwards.exit_code == 2 and "rollback" in backwards.output


def test_db_rollback_asks_then_rolls_back(run: Run, seeded: Dataset, db_file: Path) -> None:
    refused = run("db", "rollback", "--to-version", REVISIONS[0], input="n\n")
    assert refused.exit_code == 1
    assert as_json(run("db", "status", "--format", "json"))["current"] == HEAD
    result = run("db", "rollback", "--to-version", REVISIONS[0], "--force")
    assert result.exit_code == 0, result.output
    assert f"Rolled back {HEAD} -> {REVISIONS[0]}" in result.stdout
    status = as_json(run("db", "status", "--format", "json"))
    assert status["current"] == REVISIONS[0] and status["pending"] == list(REVISIONS[1:])
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 14
    assert run("db", "migrate").exit_code == 0
    assert as_json(run("stats", "--format", "json"))["total_events"] == 14


def test_db_rollback_bad_versions(run: Run, seeded: Dataset) -> None:
    result = run("db", "rollback", "--to-version", "9.9.9", "--force")
    assert result.exit_code == 2 and "--to-version" in result.output
    assert run("db", "rollback", "--force").exit_code == 2  # --to-version is required
    assert run("db", "rollback", "--to-version", "head", "--force").exit_code == 2


def test_db_health(run: Run, seeded: Dataset) -> None:
    report = as_json(run("db", "health", "--detailed", "--format", "json"))
    assert report["status"] == "healthy" and report["problems"] == []
    assert report["schema"]["current"] == HEAD and report["store"]["sessions"] == 4
    table = run("db", "health")
    assert table.exit_code == 0 and "Status: healthy" in table.stdout


def test_vibekit_aliases(run: Run, seeded: Dataset, db_file: Path) -> None:
    stats = run("telemetry", "--db", str(db_file), "stats", "--format", "json", program=vibekit, db=None)
    assert as_json(stats)["total_events"] == 14
    status = run("db", "status", "--db", str(db_file), "--format", "json", program=vibekit, db=None)
    assert as_json(status)["current"] == HEAD
    outer = run("--db", str(db_file), "db", "status", program=vibekit, db=None)
    assert outer.exit_code == 0 and HEAD in outer.stdout
    also = run("telemetry", "db", "status", "--db", str(db_file), "--format", "json", program=vibekit,
               db=None)
    assert as_json(also)["head"] == HEAD
    dashboard = run("dashboard", "--help", program=vibekit, db=None)  # seed 002's alias (issue 9)
    assert dashboard.exit_code == 0 and "--demo" in dashboard.output


def test_db_option_on_command_and_env(run: Run, seeded: Dataset, db_file: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert as_json(run("stats", "--db", str(db_file), "--format", "json", db=None))["total_sessions"] == 4
    monkeypatch.setenv("TELEMETRY_DB_PATH", str(db_file))
    assert as_json(run("stats", "--format", "json", db=None))["total_sessions"] == 4
    # An explicit --db beats the environment, at either level.
    other = db_file.with_name("other.db")
    assert run("stats", db=other).exit_code == 1
    assert run("stats", "--db", str(other), db=None).exit_code == 1
