"""The `config` group: `telemetry config check` prints the resolved configuration and where each value came from."""

from __future__ import annotations

import logging

import click

from ..config import read_config_file
from ..config_check import explain, unknown_env, unknown_options
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
    from ..config import TelemetryConfig

    state = get_state()
    file_values = read_config_file(state.config) if state.config else {}
    from ..config import ENV_CONFIG, ENV_DATABASE_URL, ENV_DB_PATH, ENV_DISABLED, ENV_FIELDS, ENV_STORE_OPTIONS

    unknown = [*unknown_options(file_values, TelemetryConfig, f"the config file {state.config}"),
               *unknown_env({ENV_CONFIG, ENV_DB_PATH, ENV_DATABASE_URL, ENV_DISABLED, *ENV_FIELDS,
                             *ENV_STORE_OPTIONS})]
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
            console(stderr=True).print(f"[yellow]warning:[/yellow] {problem}")
    if unknown:
        raise click.exceptions.Exit(2)
