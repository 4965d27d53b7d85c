"""`init`, `clear`/`clean`, `vacuum`, `reindex` and `check`: setting up and looking after the database."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from ..config import DEFAULT_DB_PATH
from ..events import now_ms
from ..store.base import Auditable, Maintainable
from ..timeparse import duration_ms
from .context import TelemetryCommand, database_label, get_state, open_store, open_telemetry
from .options import (
    console,
    database_options,
    echo_json,
    format_bytes,
    format_option,
    split_list,
)


def _local_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def record_audit(store: Any, action: str, target: str | None, details: dict[str, Any]) -> None:
    """Write an audit entry when the store keeps an audit log (best effort, never fails the command)."""
    if not isinstance(store, Auditable):
        return
    try:
        store.record_audit(_local_user(), action, target, details)
    except Exception as exc:  # the deletion happened; a missing audit row must not hide that
        click.echo(f"Warning: could not record the audit entry: {exc}", err=True)


def _database_file_size(store: Any) -> int | None:
    from ..store.sql import SQLStore

    return store.size_bytes() if isinstance(store, SQLStore) else None


# --- init ----------------------------------------------------------------------------------------

def _config_template(db_path: str) -> str:
    from ..config import default_config_toml

    return default_config_toml(db_path)


@click.command(cls=TelemetryCommand)
@click.option("--path", "config_path", metavar="FILE", default=".vibekit/telemetry.toml", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the config file.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@database_options
def init(config_path: str, force: bool) -> None:
    """Write a commented TOML config file and create the database (runs the migrations)."""
    state = get_state()
    target = Path(config_path)
    if target.exists() and not force:
        raise click.ClickException(f"{config_path} already exists (use --force to overwrite it)")
    db = state.db or DEFAULT_DB_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_config_template(db), encoding="utf-8")
    with open_telemetry(must_exist=False) as telemetry:
        store = telemetry.store
        record_audit(store, "init", db, {"config_file": str(target)})
    click.echo(f"Wrote {config_path}")
    click.echo(f"Database ready at {db}")


# --- clear / clean -------------------------------------------------------------------------------

def _describe(older_than: str | None, sessions: list[str], agents: list[str]) -> str:
    parts = []
    if older_than:
        parts.append(f"older than {older_than}")
    if sessions:
        parts.append("in session " + ", ".join(sessions))
    if agents:
        parts.append("from agent " + ", ".join(agents))
    return "events " + " and ".join(parts) if parts else "ALL events"


def _clear(older_than: str | None, days: float | None, sessions: tuple[str, ...], agents: tuple[str, ...],
           force: bool, vacuum: bool, fmt: str, command: str) -> None:
    if older_than is not None and days is not None:
        raise click.UsageError("use --older-than or --days, not both")
    if days is not None:
        older_than = f"{days:g} days"
    cutoff: int | None = None
    if older_than is not None:
        cutoff = now_ms() - duration_ms(older_than, "--older-than")
    session_ids, categories = split_list(sessions), split_list(agents)
    what = _describe(older_than, session_ids, categories)
    with open_store() as store:
        if not force:
            click.confirm(f"Delete {what} from {database_label()}?", abort=True, err=True)
        # No criterion at all deletes every event (the store's documented meaning of clean()).
        deleted = store.clean(older_than_ms=cutoff, session_ids=session_ids, categories=categories)
        details: dict[str, Any] = {"deleted": deleted, "older_than": older_than, "session_ids": session_ids,
                                   "categories": categories}
        record_audit(store, "delete", command, details)
        before = after = None
        if vacuum:
            before = _database_file_size(store)
            store.compact()
            after = _database_file_size(store)
    if fmt == "json":
        echo_json({"deleted": deleted, "vacuumed": vacuum, "size_before": before, "size_after": after})
        return
    click.echo(f"Deleted {deleted:,} event{'s' if deleted != 1 else ''}.")
    if vacuum:
        click.echo(f"Vacuumed: {format_bytes(before)} -> {format_bytes(after)}.")


def _clear_options(func: Any) -> Any:
    decorators = [
        click.option("--older-than", "older_than", metavar="AGE",
                     help="Only events older than AGE: 7d, 12h, '1 month', '2 weeks'."),
        click.option("--days", type=click.FloatRange(min=0), default=None,
                     help="Only events older than this many days (same as --older-than Nd)."),
        click.option("--session", "sessions", multiple=True, metavar="ID",
                     help="Only these sessions (repeatable or comma-separated)."),
        click.option("--agent", "--category", "agents", multiple=True, metavar="NAME",
                     help="Only these agents (repeatable or comma-separated)."),
        click.option("--force", "-f", is_flag=True, help="Do not ask for confirmation."),
        click.option("--vacuum", is_flag=True, help="Reclaim the freed space afterwards (VACUUM)."),
        format_option(("table", "json")),
        database_options,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.command(cls=TelemetryCommand)
@_clear_options
def clear(older_than: str | None, days: float | None, sessions: tuple[str, ...], agents: tuple[str, ...],
          force: bool, vacuum: bool, fmt: str) -> None:
    """Delete events (all, or by age, session or agent); asks first unless --force."""
    _clear(older_than, days, sessions, agents, force, vacuum, fmt, "clear")


@click.command(cls=TelemetryCommand)
@_clear_options
def clean(older_than: str | None, days: float | None, sessions: tuple[str, ...], agents: tuple[str, ...],
          force: bool, vacuum: bool, fmt: str) -> None:
    """Delete old data, as in `clean --days 30`; the same command as clear."""
    _clear(older_than, days, sessions, agents, force, vacuum, fmt, "clean")


# --- vacuum / reindex / check --------------------------------------------------------------------

@click.command(cls=TelemetryCommand)
@format_option(("table", "json"))
@database_options
def vacuum(fmt: str) -> None:
    """Reclaim unused space in the database file (VACUUM)."""
    with open_store() as store:
        before = _database_file_size(store)
        store.compact()
        after = _database_file_size(store)
        record_audit(store, "vacuum", None, {"size_before": before, "size_after": after})
    if fmt == "json":
        echo_json({"size_before": before, "size_after": after})
    else:
        click.echo(f"Vacuumed: {format_bytes(before)} -> {format_bytes(after)}.")


@click.command(cls=TelemetryCommand)
@format_option(("table", "json"))
@database_options
def reindex(fmt: str) -> None:
    """Rebuild the database's indexes."""
    from ..store.sql import SQLStore

    with open_store() as store:
        if not isinstance(store, SQLStore):
            raise click.ClickException("this store cannot rebuild indexes")
        store.reindex()
    if fmt == "json":
        echo_json({"reindexed": True})
    else:
        click.echo("Indexes rebuilt.")


def problems_of(store: Any) -> list[str]:
    """Run the store's integrity check when it has one; return the problems (empty when all is well)."""
    return list(store.check()) if isinstance(store, Maintainable) else []


@click.command(cls=TelemetryCommand)
@format_option(("table", "json"))
@database_options
def check(fmt: str) -> None:
    """Check the database's integrity; exits 1 when problems are found."""
    with open_store() as store:
        problems = problems_of(store)
    if fmt == "json":
        echo_json({"ok": not problems, "problems": problems})
    elif problems:
        out = console()
        for problem in problems:
            out.print(Text.assemble(("✗ ", "red"), problem))
    else:
        click.echo("OK: no problems found.")
    if problems:
        raise click.exceptions.Exit(1)
