"""`db copy`: move every event from one database to another (SQLite to PostgreSQL), resumable, verified."""

from __future__ import annotations

import os
from typing import Any

import click

from .options import console, echo_json


def _open(url: str, option: str, *, must_exist: bool) -> Any:
    from ..store.sql import SQLStore
    from ..store.sql.dialect import sqlite_path, to_url

    full = to_url(url)
    path = sqlite_path(full)
    if must_exist and path is not None and not os.path.exists(path):
        raise click.BadParameter(f"no SQLite database at {path}", param_hint=option)
    if not full.startswith(("sqlite", "postgresql")):
        raise click.BadParameter(f"a sqlite:/// or postgresql:// URL (or a file path), got {url!r}",
                                 param_hint=option)
    store = SQLStore(full)
    store.initialize()
    return store


@click.command("copy")
@click.option("--from", "source_url", required=True, metavar="URL",
              help="The database to read: a SQLite path or sqlite:///…, or postgresql://…")
@click.option("--to", "target_url", required=True, metavar="URL", help="The database to write (created if new).")
@click.option("--batch", default=5000, show_default=True, type=click.IntRange(1, 100_000),
              help="Events per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress bar).")
def copy_command(source_url: str, target_url: str, batch: int, as_json: bool) -> None:
    """Copy every event to another database: resumable (run it again), verified by event counts.

    \b
    Examples:
      telemetry db copy --from .vibekit/telemetry.db --to postgresql://telemetry@db/telemetry
      telemetry db copy --from sqlite:///old.db --to sqlite:///new.db --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..store.copy import copy_events

    source: Any = _open(source_url, "--from", must_exist=True)
    try:
        target: Any = _open(target_url, "--to", must_exist=False)
        try:
            if as_json:
                result = copy_events(source, target, batch=batch)
            else:
                columns = (TextColumn("copying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
                with Progress(*columns, console=console(stderr=True), transient=True) as bar:
                    task = bar.add_task("copy", total=None)
                    result = copy_events(source, target, batch=batch,
                                         progress=lambda done, total: bar.update(task, completed=done, total=total))
        finally:
            target.shutdown()
    finally:
        source.shutdown()
    document = {"source_events": result.source_events, "copied": result.stored, "read": result.read,
                "missing_in_target": result.missing, "verified": result.missing == 0}
    if as_json:
        echo_json(document)
    else:
        console().print(f"{result.read:,} events read, {result.stored:,} stored "
                        f"({result.read - result.stored:,} already there); "
                        f"{result.source_events - result.missing:,} of {result.source_events:,} source events "
                        f"in the target")
    if result.missing:
        raise click.ClickException(f"{result.missing} source events are missing in the target; run it again")
