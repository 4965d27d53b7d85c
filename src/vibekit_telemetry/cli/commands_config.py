"""The `config` group: `telemetry config check` prints the resolved configuration and where each value came from."""

from __future__ import annotations

import logging

import click
from rich.markup import escape

from ..config import unknown_config_options
from ..config_check import explain
from .context import TelemetryGroup, get_state
from .options import console, database_options, echo_json, format_option, print_table


@click.group(cls=TelemetryGroup)
def config() -> None:
    """Inspect the configuration the SDK and the CLI resolve (kwargs > TELEMETRY_* > file > defaults)."""


@config.command("check")
@click.option("--all", "show_all", is_flag=True, help="Show defaults too, not only values set somewhere.")
@format_option(("table", "json"))
@database_options
def check(show_all: bool, fmt: str) -> None:
    """Print each option's resolved value and its source; exits 2 when an option is unknown."""
    state = get_state()
    unknown = unknown_config_options(state.config)
    # The warnings go to the log; here they are part of the answer, printed once.
    logging.getLogger("vibekit_telemetry").disabled = True
    try:
        rows = [{"option": path, "value": value, "source": source}
                for path, value, source in explain(state.config) if show_all or source != "default"]
    finally:
        logging.getLogger("vibekit_telemetry").disabled = False
    problems = [option.message() for option in unknown]
    if fmt == "json":
        echo_json({"options": rows, "unknown": problems})
    else:
        print_table(rows, ["option", "value", "source"], title="Resolved configuration",
                    empty="Every option has its default value (use --all to list them).")
        for problem in problems:
            console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(problem)}")
    if unknown:
        raise click.exceptions.Exit(2)
