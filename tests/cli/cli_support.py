"""Helpers shared by the CLI tests: the known dataset and JSON output parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from vibekit_telemetry.service import Telemetry

# 2024-01-10 12:00:00 UTC and the two days after it.
T0 = 1_704_888_000_000
HOUR = 3_600_000
DAY = 86_400_000

Run = Callable[..., Result]


@dataclass
class Dataset:
    """Ids of the sessions `seeded` holds."""

    claude: str
    codex: str
    gemini: str
    claude_late: str


def seed(db_file: Path) -> Dataset:
    """Write four known sessions through the SDK and return their ids."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    telemetry = Telemetry(db_path=str(db_file), stream_flush_interval_ms=20, raise_on_error=True)
    try:
        claude = telemetry.track_start("claude", "code", "Fix this bug", timestamp=T0,
                                       metadata={"model": "sonnet", "priority": "high"})
        telemetry.track_stream(claude, "Looking at [bold]the code[/bold]", timestamp=T0 + 1000)
        telemetry.track_stream(claude, "Found the needle", timestamp=T0 + 2000, metadata={"chunk": 2})
        telemetry.track_end(claude, "completed", timestamp=T0 + 60_000)

        codex = telemetry.track_start("codex", "chat", "Explain regexes", timestamp=T0 + HOUR,
                                      metadata={"model": "gpt"})
        telemetry.track_stream(codex, "A regex is…", timestamp=T0 + HOUR + 500)
        telemetry.track_error(codex, "API rate limit exceeded", timestamp=T0 + HOUR + 1000)
        telemetry.track_end(codex, "error", timestamp=T0 + HOUR + 5000)

        gemini = telemetry.track_start("gemini", "ask", "What is WAL?", timestamp=T0 + DAY)
        telemetry.track_error(gemini, "API rate limit exceeded", timestamp=T0 + DAY + 100)
        telemetry.track_error(gemini, "Sandbox timed out", timestamp=T0 + DAY + 200)

        late = telemetry.track_start("claude", "chat", "Write docs", timestamp=T0 + 2 * DAY)
        telemetry.track_stream(late, "Docs written", timestamp=T0 + 2 * DAY + 1000)
        telemetry.track_end(late, "completed", timestamp=T0 + 2 * DAY + 600_000)
        assert telemetry.flush(10)
    finally:
        telemetry.shutdown()
    return Dataset(claude=claude, codex=codex, gemini=gemini, claude_late=late)


def as_json(result: Result) -> Any:
    """Parse a command's stdout as one JSON document, showing the output when it is not."""
    assert result.exit_code == 0, result.output
    try:
        return json.loads(result.stdout)
    except ValueError:  # pragma: no cover - shown on failure only
        pytest.fail(f"stdout is not one JSON document:\n{result.stdout}")
