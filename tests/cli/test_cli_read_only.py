"""Read-only commands open the store alone: no Telemetry, no writer thread, nothing recorded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import Dataset

READ_ONLY = ["stats", "sessions", "session latest", "query --errors --group-by label", "query --longest-sessions",
             "dump", "health", "db status", "db health"]

_PROBE = textwrap.dedent("""
    import sys
    from vibekit_telemetry.cli import cli
    try:
        cli(["--db", sys.argv[1], *sys.argv[2].split()], standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    loaded = [m for m in ("vibekit_telemetry.service", "vibekit_telemetry.worker") if m in sys.modules]
    print("LOADED:" + ",".join(loaded), file=sys.stderr)
""")


@pytest.mark.parametrize("command", READ_ONLY)
def test_read_only_commands_start_no_writer(command: str, db_file: Path, seeded: Dataset) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, str(db_file), command], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED:\n" in result.stderr  # neither the SDK facade nor its writer was even imported
