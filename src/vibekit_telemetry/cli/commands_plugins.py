"""`plugins list`: the plugins `plugins=[...]` can name, built-in and installed (entry points)."""

from __future__ import annotations

import json

import click

from .context import TelemetryCommand, TelemetryGroup


@click.group(cls=TelemetryGroup)
def plugins() -> None:
    """Plugins: hooks around tracking, storing, querying and exporting (docs/plugins.md)."""


@plugins.command("list", cls=TelemetryCommand)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
def list_plugins(fmt: str) -> None:
    """List built-in plugins and those installed packages declare (group `vibekit_telemetry.plugins`)."""
    from ..plugins import available

    found = available()
    if fmt == "json":
        click.echo(json.dumps(found, indent=2))
        return
    width = max(len(p["name"]) for p in found)
    source_width = max(len(p["source"]) for p in found)
    for plugin in found:
        click.echo(f"{plugin['name']:<{width}}  {plugin['source']:<{source_width}}  {plugin['target']}")
