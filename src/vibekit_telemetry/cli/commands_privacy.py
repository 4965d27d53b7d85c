"""`user export|delete`, `db audit` and `keys rotate`: privacy requests, the audit trail, key rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import StoreError, ValidationError
from ..store.base import Auditable
from .commands_maint import _local_user
from .context import TelemetryCommand, TelemetryGroup, _config, open_store
from .options import database_options, echo_json, emit_rows, format_option, time_option_value

_AUDIT_COLUMNS = ("id", "timestamp", "actor", "action", "target", "table_name", "record_id", "details")


def _user_fields() -> list[str]:
    return list(_config().security.retention.user_fields)


@click.group(cls=TelemetryGroup)
@database_options
def user() -> None:
    """A user's data on request: export it, or delete it with a reason (both audited)."""


@user.command("export", cls=TelemetryCommand)
@click.argument("user_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the JSON here instead of stdout.")
@database_options
def user_export(user_id: str, output: str | None) -> None:
    """Export every session and event naming USER_ID (context/metadata user fields) as JSON."""
    from ..privacy.userdata import export_user_data

    with open_store() as store:
        try:
            document = export_user_data(store, user_id, actor=_local_user(), fields=_user_fields())
        except ValidationError as exc:
            raise click.BadParameter(str(exc), param_hint="USER_ID") from None
    if output:
        Path(output).write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
        click.echo(f"Exported {len(document['events'])} events of {len(document['sessions'])} sessions to {output}")
    else:
        echo_json(document)


@user.command("delete", cls=TelemetryCommand)
@click.argument("user_id")
@click.option("--reason", required=True, help="Why the data is deleted (kept in the audit log).")
@click.option("--request-id", help="The request's reference (kept in the audit log).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@format_option(("table", "json"))
@database_options
def user_delete(user_id: str, reason: str, request_id: str | None, yes: bool, fmt: str) -> None:
    """Delete every session naming USER_ID, reclaim the space, and record who and why in the audit log."""
    from ..privacy.userdata import delete_user_data

    if not reason.strip():
        raise click.BadParameter("expected a non-empty reason", param_hint="--reason")
    if not yes:
        click.confirm(f"Delete all data of user {user_id!r}?", abort=True)
    with open_store() as store:
        summary = delete_user_data(store, user_id, reason=reason, request_id=request_id, actor=_local_user(),
                                   fields=_user_fields())
    if fmt == "json":
        echo_json(summary)
    else:
        click.echo(f"Deleted {summary['events']} events in {summary['sessions']} sessions of {summary['user']}; "
                   "recorded in the audit log.")


@click.command("audit", cls=TelemetryCommand)
@click.option("--table", help="Only entries about this table (sessions, events, users …).")
@click.option("--since", metavar="TIME", help="Only entries since TIME (24h, 7d, yesterday, an ISO date …).")
@click.option("--action", help="Only this action (delete, export, config …).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--verify", is_flag=True, help="Check the hash chain; exit 1 when an entry was changed or removed.")
@format_option()
@database_options
def audit(table: str | None, since: str | None, action: str | None, limit: int, verify: bool, fmt: str) -> None:
    """Show the audit trail (who did what, when), or verify that nobody edited it."""
    with open_store() as store:
        if not isinstance(store, Auditable):
            raise click.ClickException("this store keeps no audit log")
        if verify:
            problems = store.verify_audit()
            if problems:
                for problem in problems:
                    click.echo(problem, err=True)
                raise click.ClickException(f"audit log tampered with: {len(problems)} problem(s)")
            click.echo("Audit log intact: every entry chains to the one before it.")
            return
        rows = store.audit_log(limit, table=table, since=time_option_value(since, "--since"), action=action)
    for row in rows:
        row["details"] = json.dumps(row["details"], default=str) if fmt == "table" and row["details"] else \
            row["details"]
    emit_rows(rows, _AUDIT_COLUMNS, fmt, title="Audit log", empty="No audit entries.")


@click.command("rotate", cls=TelemetryCommand)
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Rows per transaction.")
@database_options
def rotate(batch: int) -> None:
    """Re-encrypt values written under old encryption keys with the current key (TELEMETRY_ENCRYPTION_KEY)."""
    from ..privacy.rotate import rotate as rotate_store

    with open_store() as store:
        try:
            counts: dict[str, Any] = rotate_store(store, batch=batch)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        from ..cli.commands_maint import record_audit

        record_audit(store, "rotate_key", "encryption", counts)
    click.echo(f"Re-encrypted {counts['events']} events and {counts['sessions']} sessions under the current key.")
