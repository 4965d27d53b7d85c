"""Plugins in health: get_health_status(), /api/health, /health/ready list each plugin; a disabled one is an issue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.plugins import Plugin


class Failing(Plugin):
    name = "failing"
    version = "2.1.0"

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        raise RuntimeError("secret-detail boom")


class Fine(Plugin):
    name = "fine"
    version = "1.0"

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        return event


def _track_batches(t: Telemetry, count: int) -> None:
    for index in range(count):
        t.track({"event_type": "start", "session_id": f"s{index}", "agent_type": "claude"})
        assert t.flush()  # one batch each: each batch is one failure of the failing plugin


def test_health_lists_plugins_and_a_disabled_one_is_an_issue(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db"), plugins=[Fine(), Failing()], plugin_max_failures=3) as t:
        _track_batches(t, 2)
        health = t.get_health_status()
        by_name = {p["name"]: p for p in health["plugins"]}
        assert by_name["fine"]["version"] == "1.0" and by_name["fine"]["enabled"] and by_name["fine"]["calls"] == 2
        assert by_name["failing"]["enabled"] and by_name["failing"]["errors"] == 2
        assert not any(i.startswith("plugin") for i in health["issues"])  # failing, but not disabled yet
        _track_batches(t, 3)
        health = t.get_health_status()
        failing = {p["name"]: p for p in health["plugins"]}["failing"]
        assert failing["enabled"] is False and failing["version"] == "2.1.0"
        assert failing["errors"] == 3 and failing["skipped"] == 2 and failing["timeouts"] == 0
        assert failing["disabled_reason"] == "3 failures in a row" and "boom" in failing["disabled"]
        assert [i for i in health["issues"] if i.startswith("plugin")] == [
            "plugin failing: disabled (3 failures in a row; last: before_track: RuntimeError: secret-detail boom)"]
        assert health["healthy"] is False and health["status"] == "degraded"
        assert len(t.query()) == 5  # tracking went on throughout


def test_health_without_plugins_has_an_empty_list(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        health = t.get_health_status()
        assert health["plugins"] == [] and health["healthy"] is True


def test_server_health_endpoints_show_plugins(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    httpx = pytest.importorskip("httpx", reason="httpx is not installed")
    with Telemetry(db_path=str(tmp_path / "t.db"), plugins=[Fine(), Failing()], plugin_max_failures=1) as t:
        _track_batches(t, 1)
        server = t.start_api_server(0)
        try:
            ready = httpx.get(f"{server.url}/health/ready", timeout=10)
            detail: dict[str, Any] = httpx.get(f"{server.url}/api/health", timeout=10).json()
        finally:
            server.stop()
    assert ready.status_code == 200  # a disabled plugin does not stop the server being ready
    body = ready.json()
    assert body["components"]["plugins"] == [
        {"name": "fine", "version": "1.0", "enabled": True, "calls": 1, "errors": 0, "timeouts": 0,
         "disabled_reason": None},
        {"name": "failing", "version": "2.1.0", "enabled": False, "calls": 1, "errors": 1, "timeouts": 0,
         "disabled_reason": "1 failure in a row"}]
    assert "secret-detail" not in str(body["components"])  # the error's text stays out of the components
    assert any(i.startswith("plugin failing: disabled") for i in body["issues"])
    assert [p["name"] for p in detail["plugins"]] == ["fine", "failing"] and detail["plugins"][1]["last_error"]


def test_cli_health_detailed_shows_each_writers_plugins(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vibekit_telemetry.cli import cli

    db = tmp_path / "t.db"
    with Telemetry(db_path=str(db), plugins=[Fine(), Failing()], plugin_max_failures=2) as t:
        _track_batches(t, 3)
    # This command runs no writer: it reads what the writer above recorded (writer_runs.plugins).
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db), "health", "--detailed", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["fine"]["enabled"] and plugins["fine"]["version"] == "1.0" and plugins["fine"]["calls"] == 3
    assert plugins["failing"]["enabled"] is False and plugins["failing"]["errors"] == 2
    assert plugins["failing"]["disabled_reason"] == "2 failures in a row" and plugins["failing"]["writer"]
    assert report["status"] == "degraded" and any(
        i.startswith("plugin failing (writer ") and "disabled (2 failures in a row" in i for i in report["issues"])
    table = runner.invoke(cli, ["--db", str(db), "health", "--detailed"])
    assert "plugins[1].disabled_reason" in table.stdout and "2 failures in a row" in table.stdout
    summary = json.loads(runner.invoke(cli, ["--db", str(db), "health", "--format", "json"]).stdout)
    assert "plugins" not in summary and summary["status"] == "degraded"  # the issue shows without --detailed
