"""Fixtures for the CLI tests: a runner bound to one SQLite file per test, and a known dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import Dataset, Run, seed
from click.testing import CliRunner, Result

from vibekit_telemetry.cli import cli


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    """The test's own database path (not created)."""
    return tmp_path / "cli" / "telemetry.db"


@pytest.fixture
def run(db_file: Path) -> Run:
    """Invoke `telemetry --db <db_file> ARGS…`; pass input= for prompts, db=None for no --db."""

    def invoke(*args: str, input: str | None = None, db: Path | str | None = db_file,
               program: Any = cli) -> Result:
        prefix = ["--db", str(db)] if db is not None else []
        return CliRunner().invoke(program, [*prefix, *args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def seeded(db_file: Path) -> Dataset:
    """The test's database filled with the known dataset (14 events, 4 sessions, 3 errors)."""
    return seed(db_file)


