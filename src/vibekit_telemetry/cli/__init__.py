"""The `telemetry` command line (and its `vibekit telemetry …` / `vibekit db …` aliases).

One click group; commands live in the `commands_*` modules by topic, shared option decorators and
output formatting in `options`, database selection and error-to-exit-code mapping in `context`.
Exit codes: 0 success, 1 failure (one `Error: …` line, no traceback), 2 bad usage.
"""

from __future__ import annotations

import click

from .. import __version__
from .commands_api import api
from .commands_db import db
from .commands_demo import demo
from .commands_events import dump, query
from .commands_keys import keys
from .commands_lake import lake
from .commands_maint import check, clean, clear, init, reindex, vacuum
from .commands_sessions import session, sessions
from .commands_stats import health, stats
from .context import TelemetryCommand, TelemetryGroup
from .options import database_options

__all__ = ["cli", "main", "vibekit", "vibekit_main"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(cls=TelemetryGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="telemetry")
@database_options
def cli() -> None:
    """Local-first telemetry for AI-agent apps: inspect, query and maintain the event store.

    \b
    Start with:
      telemetry demo --sessions 25     # simulated agent sessions
      telemetry stats                  # totals, agents, date range, size
      telemetry sessions               # newest sessions first
      telemetry dump --from yesterday --format json
    """


for _command in (init, demo, dump, query, sessions, session, stats, health, clear, clean, vacuum, reindex,
                 check, db):
    cli.add_command(_command)
cli.add_command(api)  # the API server (issue 3)
cli.add_command(keys)  # API keys for the server (issue 7)
cli.add_command(lake)  # usage batches with DuckDB (issue 14)


@click.group(cls=TelemetryGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="vibekit")
@database_options
def vibekit() -> None:
    """VibeKit's command line: `vibekit telemetry …`, `vibekit db …`, `vibekit dashboard`."""


@vibekit.command(cls=TelemetryCommand)
def dashboard() -> None:
    """Open the live telemetry dashboard (not available yet)."""
    # TODO: start the dashboard server once the dashboard issue lands (`telemetry dashboard`).
    raise click.ClickException("the dashboard is not available yet; use `vibekit telemetry stats` "
                               "and `vibekit telemetry sessions`")


vibekit.add_command(cli, name="telemetry")
vibekit.add_command(db)


def main() -> None:
    """Run the `telemetry` console script."""
    cli(prog_name="telemetry")


def vibekit_main() -> None:
    """Run the `vibekit` console script."""
    vibekit(prog_name="vibekit")
