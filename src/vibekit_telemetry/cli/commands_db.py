"""The `db` group: schema versions and migrations (init, status, migrate, rollback, health)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from .context import TelemetryGroup, database_label, schema_store
from .options import console, database_options, echo_json, format_bytes, format_option, print_key_values

if TYPE_CHECKING:
    from ..store.sql import SQLStore


def _versions() -> tuple[str, ...]:
    from ..store.migrate import REVISIONS

    return tuple(REVISIONS)


def _check_version(value: str, *, allow_base: bool) -> str:
    known = _versions()
    if value == "head" or value in known or (allow_base and value == "base"):
        return value
    choices = [*known, "head"] + (["base"] if allow_base else [])
    raise click.BadParameter(f"expected one of {', '.join(choices)}, got {value!r}",
                             param_hint="--to-version")


def _status_document(store: SQLStore) -> dict[str, Any]:
    info = store.schema_status()
    info["database"] = database_label()
    info["up_to_date"] = not info.get("pending") and not info.get("newer")
    return info


def _print_status(info: dict[str, Any]) -> None:
    pending = info.get("pending") or []
    print_key_values([
        ("Database", str(info.get("database"))),
        ("Current version", str(info.get("current") or "none (not initialised)")),
        ("Head version", str(info.get("head"))),
        ("Pending", ", ".join(pending) if pending else
         "none: the database is newer than this release (upgrade vibekit-telemetry)" if info.get("newer")
         else "none (up to date)"),
    ])


@click.group(cls=TelemetryGroup)
@database_options
def db() -> None:
    """Database schema: create, inspect, migrate and roll back versions."""


@db.command("init")
@format_option(("table", "json"))
@database_options
def db_init(fmt: str) -> None:
    """Create the database, or bring it to the newest schema version."""
    store = schema_store(must_exist=False)
    before = store.schema_version()
    store.upgrade_schema("head")
    info = _status_document(store)
    info["previous"] = before
    if fmt == "json":
        echo_json(info)
        return
    if before == info["head"]:
        click.echo(f"Database {info['database']} already at version {info['head']}.")
    else:
        click.echo(f"Database {info['database']} initialised at version {info['head']}.")


@db.command("status")
@format_option(("table", "json"))
@database_options
def db_status(fmt: str) -> None:
    """Show the current schema version, the newest one, and the migrations still pending."""
    info = _status_document(schema_store())
    if fmt == "json":
        echo_json(info)
    else:
        _print_status(info)


@db.command("migrate")
@click.option("--to-version", "to_version", default="head", show_default=True, metavar="VERSION",
              help="The version to migrate up to.")
@format_option(("table", "json"))
@database_options
def db_migrate(to_version: str, fmt: str) -> None:
    """Apply pending migrations, up to the head or --to-version."""
    target = _check_version(to_version, allow_base=False)
    store = schema_store(must_exist=False)
    before = store.schema_version()
    known = _versions()
    if target != "head" and before in known and known.index(target) < known.index(before):
        raise click.UsageError(f"the database is at {before}, newer than {target}; "
                               f"use `telemetry db rollback --to-version {target}`")
    store.upgrade_schema(target)
    info = _status_document(store)
    _report(info, before, fmt, f"Migrated {before or 'empty database'} -> {info['current']}.")


@db.command("rollback")
@click.option("--to-version", "to_version", required=True, metavar="VERSION",
              help="The version to roll back to ('base' removes every table).")
@click.option("--force", "-f", is_flag=True, help="Do not ask for confirmation.")
@format_option(("table", "json"))
@database_options
def db_rollback(to_version: str, force: bool, fmt: str) -> None:
    """Roll the schema back to an older version (data in removed tables is lost)."""
    target = _check_version(to_version, allow_base=True)
    store = schema_store()
    before = store.schema_version()
    known = _versions()
    if before is None:
        raise click.ClickException("the database has no schema version to roll back from")
    if target == "head" or (target != "base" and before in known
                            and known.index(target) > known.index(before)):
        raise click.UsageError(f"the database is at {before}; use `telemetry db migrate` to go up")
    if target != before:
        if not force:
            click.confirm(f"Roll {database_label()} back from {before} to {target}? "
                          "Data in tables a newer version added is lost.", abort=True, err=True)
        store.downgrade_schema(target)
    info = _status_document(store)
    _report(info, before, fmt, f"Rolled back {before} -> {info['current'] or 'base'}.")


def _report(info: dict[str, Any], before: str | None, fmt: str, moved: str) -> None:
    """Print what a migrate or rollback did: the status document as JSON, or one line."""
    info["previous"] = before
    if fmt == "json":
        echo_json(info)
    elif before == info["current"]:
        click.echo(f"Nothing to do: already at version {before}.")
    else:
        click.echo(moved)


@db.command("health")
@click.option("--detailed", is_flag=True, help="Also run the integrity check.")
@format_option(("table", "json"))
@database_options
def db_health(detailed: bool, fmt: str) -> None:
    """The database's health: reachable, schema version, size and row counts; exits 1 when unhealthy."""
    from .commands_maint import problems_of
    from .context import open_store

    info = _status_document(schema_store())
    with open_store() as store:
        report: dict[str, Any] = {"schema": info, "store": dict(store.health())}
        if detailed:
            report["problems"] = problems_of(store)
    store_ok = report["store"].get("ok", report["store"].get("reachable", True))
    healthy = bool(store_ok) and not report.get("problems")
    report["status"] = "healthy" if healthy else "unhealthy"
    if fmt == "json":
        echo_json(report)
    else:
        style = "green" if healthy else "red"
        console().print(Text.assemble(("Status: ", "bold"), (report["status"], f"bold {style}")))
        pairs = [("Schema version", f"{info.get('current')} (head {info.get('head')})")]
        for key, value in report["store"].items():
            if key in ("size_bytes", "database_size_bytes"):
                pairs.append((key, format_bytes(value)))
            elif not isinstance(value, dict | list):
                pairs.append((key, "-" if value is None else str(value)))
        if detailed:
            pairs.append(("Integrity", "ok" if not report["problems"] else "; ".join(report["problems"])))
        print_key_values(pairs)
    if not healthy:
        raise click.exceptions.Exit(1)
