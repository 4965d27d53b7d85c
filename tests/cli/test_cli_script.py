"""The installed `telemetry` console script, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _command() -> list[str]:
    script = Path(sys.executable).with_name("telemetry")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "vibekit_telemetry.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMETRY_")}
    return subprocess.run([*_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_console_script_end_to_end(tmp_path: Path) -> None:
    demo = _run("demo", "--sessions", "5", "--seed", "1", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / ".vibekit" / "telemetry.db").is_file()
    stats = _run("stats", "--format", "json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total_sessions"] == 5
    bad = _run("dump", "--from", "next blursday", cwd=tmp_path)
    assert bad.returncode == 2 and "--from" in bad.stderr and "Traceback" not in bad.stderr
    missing = _run("session", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: ")
    assert "Traceback" not in missing.stderr


def test_module_entry_point_prints_help(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    for command in ("demo", "dump", "query", "sessions", "session", "stats", "clear", "clean", "vacuum",
                    "reindex", "check", "health", "init", "db"):
        assert command in result.stdout
