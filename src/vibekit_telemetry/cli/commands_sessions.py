"""`sessions` and `session`: sessions as the store maintains them."""

from __future__ import annotations

from typing import Any

import click

from ..events import SESSION_STATUSES
from ..query import parse_session_filter
from .context import TelemetryCommand, open_store
from .options import (
    EVENT_ALIASES,
    EVENT_FIELDS,
    EVENT_TABLE_FIELDS,
    SESSION_ALIASES,
    SESSION_FIELDS,
    SESSION_TABLE_FIELDS,
    database_options,
    echo_json,
    effective_limit,
    emit_rows,
    format_duration,
    format_time,
    output_options,
    print_key_values,
    print_table,
    select_columns,
    split_list,
    time_option_value,
)


@click.command(cls=TelemetryCommand)
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Session status: " + ", ".join(SESSION_STATUSES) + " (repeatable or comma-separated).")
@click.option("--agent", "--category", "--agent-type", "agents", multiple=True, metavar="NAME",
              help="Agent type / category (repeatable or comma-separated).")
@click.option("--since", "--from", "since", metavar="TIME", help="Sessions started at or after TIME.")
@click.option("--until", "--to", "until", metavar="TIME", help="Sessions started at or before TIME.")
@click.option("--with-errors", is_flag=True, help="Only sessions that recorded an error.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="At most this many sessions [default: 100 for tables, all for json/csv].")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Skip this many sessions first.")
@click.option("--order", type=click.Choice(["asc", "desc"], case_sensitive=False), default="desc",
              show_default=True, help="Order by start time.")
@output_options
@database_options
def sessions(statuses: tuple[str, ...], agents: tuple[str, ...], since: str | None, until: str | None,
             with_errors: bool, limit: int | None, offset: int, order: str, fmt: str,
             fields: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """List sessions, newest first: status, agent, duration, event, stream and error counts."""
    kwargs: dict[str, Any] = {
        "statuses": split_list(statuses) or None,
        "categories": split_list(agents) or None,
        "since": time_option_value(since, "--since"),
        "until": time_option_value(until, "--until"),
        "with_errors": True if with_errors else None,
        "limit": effective_limit(limit, fmt),
        "offset": offset,
        "order": order.lower(),
    }
    session_filter = parse_session_filter(**{k: v for k, v in kwargs.items() if v is not None})
    columns = select_columns(SESSION_FIELDS, fields, exclude, aliases=SESSION_ALIASES,
                             table_default=SESSION_TABLE_FIELDS, fmt=fmt)
    with open_store() as store:
        rows = [s.to_dict() for s in store.get_sessions(session_filter)]
    emit_rows(rows, columns, fmt, empty="No sessions match.")


@click.command(cls=TelemetryCommand)
@click.argument("session_id")
@click.option("--with-events", is_flag=True, help="Also list the session's events.")
@output_options
@database_options
def session(session_id: str, with_events: bool, fmt: str, fields: tuple[str, ...],
            exclude: tuple[str, ...]) -> None:
    """Show one session's details (and its events with --with-events); `latest` means the newest one."""
    event_columns = select_columns(EVENT_FIELDS, fields, exclude, aliases=EVENT_ALIASES,
                                   table_default=EVENT_TABLE_FIELDS, fmt=fmt)
    with open_store() as store:
        found = store.get_session(session_id, with_events=with_events)
        if found is None and session_id == "latest":
            newest = store.get_sessions(parse_session_filter(limit=1, order="desc"))
            if newest:
                found = store.get_session(newest[0].id, with_events=with_events)
    if found is None:
        raise click.ClickException(f"no session {session_id!r} (list them with `telemetry sessions`)")
    data = found.to_dict()
    events = data.pop("events", None) or []
    if fmt == "json":
        document: dict[str, Any] = dict(data)
        if with_events:
            document["events"] = [{c: e.get(c) for c in event_columns} for e in events]
        echo_json(document)
        return
    if fmt == "csv":
        if with_events:
            emit_rows(events, event_columns, "csv")
        else:
            emit_rows([data], list(SESSION_FIELDS), "csv")
        return
    pairs = [
        ("Session", str(data["id"])),
        ("Agent", str(data.get("category") or "")),
        ("Mode", str(data.get("action") or "")),
        ("Status", str(data.get("status") or "")),
        ("Started", format_time(data.get("start_time"))),
        ("Ended", format_time(data.get("end_time")) or "-"),
        ("Duration", format_duration(data.get("duration")) or "-"),
        ("Events", f"{data.get('event_count', 0):,}"),
        ("Stream chunks", f"{data.get('stream_count', 0):,}"),
        ("Errors", f"{data.get('error_count', 0):,}"),
    ]
    for label, key in (("Prompt", "label"), ("Sandbox", "sandbox_id"), ("Repository", "repo_url")):
        if data.get(key):
            pairs.append((label, str(data[key])))
    if data.get("metadata"):
        import json

        pairs.append(("Metadata", json.dumps(data["metadata"], ensure_ascii=False, default=str)))
    print_key_values(pairs)
    if with_events:
        print_table(events, event_columns, title="Events", empty="No events.")
