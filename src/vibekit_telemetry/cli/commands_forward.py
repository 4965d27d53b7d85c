"""`forward`: the agent host's side of a central server (issue 16): how far each destination is behind."""

from __future__ import annotations

from typing import Any

import click

from .context import TelemetryGroup, _config, open_store
from .options import emit_rows, format_option

COLUMNS = ("name", "cursor", "committed", "lag", "oldest_unsent_age_s")


@click.group(cls=TelemetryGroup)
def forward() -> None:
    """Forwarding to a central `telemetry api` (TELEMETRY_SERVER_URL) and the other exporters.

    \b
    Examples:
      telemetry forward status                 # lag per destination
      telemetry forward status --format json
    """


@forward.command()
@format_option(("table", "json", "csv"))
def status(fmt: str) -> None:
    """Lag per destination: events committed locally and not yet delivered, and the oldest one's age."""
    from ..exporters.lag import lag_report
    from ..store.base import ChangeLog

    configured = _configured_exporters()
    with open_store() as store:
        if not isinstance(store, ChangeLog):
            raise click.ClickException("the configured store keeps no change log: nothing is followed")
        rows = lag_report(store, configured)
    emit_rows(rows, COLUMNS, fmt, title="Forwarding", empty="No exporter has delivered anything from this store.")


def _configured_exporters() -> list[str]:
    """The cursor names of the configuration's exporters (built, not started: nothing is sent)."""
    from .. import registry
    from ..exporters.manager import DeliveryOptions

    names: list[str] = []
    for i, entry in enumerate(_config().storage_entries()):
        field = f"storage[{i}]"
        if registry.kind_of(entry.type, f"{field}.type") != "exporter":
            continue
        _, options = DeliveryOptions.split(entry.options, f"{field}.options")
        _, exporter = registry.build(entry.type, options, field=field)
        name: Any = getattr(exporter, "name", None)
        if isinstance(name, str):
            names.append(name)
        exporter.shutdown()
    return names
