"""The `telemetry` command line (and its `vibekit telemetry …` / `vibekit db …` aliases).

One click group; commands live in the `commands_*` modules by topic, shared option decorators and
output formatting in `options`, database selection and error-to-exit-code mapping in `context`.
Exit codes: 0 success, 1 failure (one `Error: …` line, no traceback), 2 bad usage.
"""

from __future__ import annotations

import click

from .. import __version__
from .commands_analytics import analytics, metrics
from .commands_api import api
from .commands_config import config as config_group
from .commands_dashboard import dashboard
from .commands_db import db
from .commands_db_copy import copy_command
from .commands_demo import demo
from .commands_events import dump, query
from .commands_export import convert_command, export_command, import_command, migrate_legacy_command, schedule
from .commands_forward import forward
from .commands_keys import keys
from .commands_lake import lake
from .commands_maint import check, clean, clear, init, reindex, vacuum
from .commands_plugins import plugins
from .commands_privacy import audit, rotate, user
from .commands_sessions import session, sessions
from .commands_stats import health, stats
from .context import TelemetryGroup
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
cli.add_command(config_group)  # `telemetry config check` (issue 13)
cli.add_command(user); db.add_command(audit); keys.add_command(rotate)  # privacy (issue 12)  # noqa: E702
cli.add_command(dashboard)  # the web dashboard (issue 9); also `vibekit dashboard` below
cli.add_command(metrics)  # analytics (issue 10)
cli.add_command(analytics)
for _command in (export_command, convert_command, import_command, migrate_legacy_command, schedule):  # issue 11
    cli.add_command(_command)
cli.add_command(lake)  # usage batches with DuckDB (issue 14)
cli.add_command(plugins)  # `telemetry plugins list` (issue 15)
cli.add_command(forward); db.add_command(copy_command)  # central server, moving stores (issue 16)  # noqa: E702


@click.group(cls=TelemetryGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="vibekit")
@database_options
def vibekit() -> None:
    """VibeKit's command line: `vibekit telemetry …`, `vibekit db …`, `vibekit dashboard`."""


vibekit.add_command(dashboard)  # seed 002's `vibekit dashboard`
vibekit.add_command(cli, name="telemetry")
vibekit.add_command(db)


def main() -> None:
    """Run the `telemetry` console script."""
    cli(prog_name="telemetry")


def vibekit_main() -> None:
    """Run the `vibekit` console script."""
    vibekit(prog_name="vibekit")
