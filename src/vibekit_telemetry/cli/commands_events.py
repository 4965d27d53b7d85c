"""`dump` and `query`: events out of the store, filtered, in a table, JSON or CSV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ..query import parse_query, parse_session_filter
from ..store.base import ERROR_GROUP_FIELDS, EventIterable, ReadInsights
from .adhoc_sql import run_readonly_sql, sql_options
from .context import TelemetryCommand, open_store
from .options import (
    EVENT_ALIASES,
    EVENT_FIELDS,
    EVENT_TABLE_FIELDS,
    SESSION_ALIASES,
    SESSION_FIELDS,
    SESSION_TABLE_FIELDS,
    build_query_kwargs,
    database_options,
    effective_limit,
    emit_rows,
    event_filter_options,
    output_options,
    select_columns,
)
from .stream_output import stream_csv, stream_json

ERROR_GROUPS = ERROR_GROUP_FIELDS


def _emit_events(filters: dict[str, Any], fmt: str, fields: Sequence[str], exclude: Sequence[str]) -> None:
    query_filter = parse_query(**filters)
    columns = select_columns(EVENT_FIELDS, fields, exclude, aliases=EVENT_ALIASES,
                             table_default=EVENT_TABLE_FIELDS, fmt=fmt)
    with open_store() as store:
        if fmt.lower() in ("json", "csv") and isinstance(store, EventIterable):
            # Streamed page by page (issue 11): constant memory however many events match.
            rows_iter = (event.to_dict() for event in store.iter_events(query_filter, chunk_size=1000))
            (stream_json if fmt.lower() == "json" else stream_csv)(rows_iter, columns)
            return
        events = store.query(query_filter)
    rows = [event.to_dict() for event in events]
    emit_rows(rows, columns, fmt, empty="No events match.")


@click.command(cls=TelemetryCommand)
@event_filter_options
@output_options
@database_options
def dump(fmt: str, fields: tuple[str, ...], exclude: tuple[str, ...], limit: int | None,
         **filter_options: Any) -> None:
    """Print or export events, filtered by time, session, agent, type, mode, text or metadata."""
    filters = build_query_kwargs(limit=effective_limit(limit, fmt), **filter_options)
    _emit_events(filters, fmt, fields, exclude)


def _unique_columns(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        candidate, n = name, 2
        while candidate in out:
            candidate, n = f"{name}_{n}", n + 1
        out.append(candidate)
    return out


def _run_sql(sql: str, fmt: str, fields: Sequence[str], exclude: Sequence[str], **limits: Any) -> None:
    result = run_readonly_sql(sql, **limits)
    columns = _unique_columns(result.columns)
    rows = [dict(zip(columns, row, strict=False)) for row in result.rows]
    shown = select_columns(columns, fields, exclude, fmt=fmt)
    emit_rows(rows, shown, fmt, empty="The query returned no rows.")


def _session_rows(store: Any, filters: dict[str, Any]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in store.get_sessions(parse_session_filter(**filters))]


def _insights(store: Any) -> ReadInsights:
    if not isinstance(store, ReadInsights):
        raise click.ClickException("this store cannot answer this question (no error_groups / longest_sessions)")
    return store


def _longest_sessions(filters: dict[str, Any], limit: int, fmt: str, fields: Sequence[str],
                      exclude: Sequence[str]) -> None:
    session_filter = parse_session_filter(**{k: v for k, v in filters.items()
                                             if k in ("since", "until", "categories")})
    with open_store() as store:
        rows = [s.to_dict() for s in _insights(store).longest_sessions(session_filter, limit)]
    columns = select_columns(SESSION_FIELDS, fields, exclude, aliases=SESSION_ALIASES,
                             table_default=SESSION_TABLE_FIELDS, fmt=fmt)
    emit_rows(rows, columns, fmt, title="Longest sessions", empty="No finished sessions.")


def _sessions_with_errors(filters: dict[str, Any], limit: int | None, fmt: str, fields: Sequence[str],
                          exclude: Sequence[str]) -> None:
    session_filter = {k: v for k, v in filters.items() if k in ("since", "until", "categories", "offset")}
    with open_store() as store:
        rows = _session_rows(store, {**session_filter, "with_errors": True, "limit": limit})
    columns = select_columns(SESSION_FIELDS, fields, exclude, aliases=SESSION_ALIASES,
                             table_default=SESSION_TABLE_FIELDS, fmt=fmt)
    emit_rows(rows, columns, fmt, title="Sessions with errors", empty="No sessions with errors.")


def _error_groups(filters: dict[str, Any], group_by: str, limit: int | None, fmt: str,
                  fields: Sequence[str], exclude: Sequence[str]) -> None:
    filters = {k: v for k, v in filters.items() if k not in ("limit", "offset", "event_types")}
    with open_store() as store:
        groups = _insights(store).error_groups(parse_query(**filters), by=group_by, limit=limit)
    rows = [{group_by: g.key, "count": g.count, "sessions": g.sessions, "first_seen": g.first_seen,
             "last_seen": g.last_seen, "sample_sessions": ", ".join(g.sample_session_ids)} for g in groups]
    available = [group_by, "count", "sessions", "first_seen", "last_seen", "sample_sessions"]
    columns = select_columns(available, fields, exclude, aliases=EVENT_ALIASES, fmt=fmt)
    emit_rows(rows, columns, fmt, title=f"Errors by {group_by}", empty="No errors match.")


@click.command(cls=TelemetryCommand)
@click.argument("sql", required=False)
@event_filter_options
@click.option("--sessions-with-errors", is_flag=True, help="List sessions that recorded errors.")
@click.option("--longest-sessions", is_flag=True, help="List finished sessions, longest first.")
@click.option("--errors", "errors", is_flag=True, help="Error events; with --group-by, counted per group.")
@click.option("--group-by", "group_by", metavar="FIELD",
              help="With --errors: group by " + ", ".join(ERROR_GROUPS) + " (prompt and agent accepted).")
@sql_options
@output_options
@database_options
def query(sql: str | None, fmt: str, fields: tuple[str, ...], exclude: tuple[str, ...], limit: int | None,
          sessions_with_errors: bool, longest_sessions: bool, errors: bool, group_by: str | None,
          sql_timeout: float, max_rows: int, allow_superuser: bool, **filter_options: Any) -> None:
    """Query events with filters, run read-only SQL, or ask a canned question.

    \b
    Examples:
      telemetry query --agent claude --type stream --limit 20
      telemetry query "SELECT category, COUNT(*) AS n FROM events GROUP BY category"
      telemetry query --longest-sessions
      telemetry query --errors --group-by label
      telemetry query --sessions-with-errors --format json
    """
    modes = [name for name, on in (("SQL", sql is not None), ("--sessions-with-errors", sessions_with_errors),
                                   ("--longest-sessions", longest_sessions), ("--errors", errors)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"use only one of {', '.join(modes)}")
    if group_by is not None and not errors:
        raise click.UsageError("--group-by goes with --errors (use `telemetry stats --group-by` for totals)")
    if sql is not None:
        if not sql.strip():
            raise click.BadParameter("an SQL statement", param_hint="SQL")
        _run_sql(sql, fmt, fields, exclude, sql_timeout=sql_timeout, max_rows=max_rows,
                 allow_superuser=allow_superuser)
        return
    filters = build_query_kwargs(limit=limit, **filter_options)
    if longest_sessions:
        _longest_sessions(filters, limit if limit is not None else 10, fmt, fields, exclude)
    elif sessions_with_errors:
        _sessions_with_errors(filters, effective_limit(limit, fmt), fmt, fields, exclude)
    elif errors and group_by is not None:
        aliases = {"prompt": "label", "message": "label", "error": "label", "agent": "category",
                   "agent_type": "category", "agenttype": "category", "mode": "action",
                   "session": "session_id", "sessionid": "session_id"}
        key = aliases.get(group_by.lower(), group_by.lower())
        if key not in ERROR_GROUPS:
            raise click.BadParameter(f"expected one of {', '.join(ERROR_GROUPS)}, got {group_by!r}",
                                     param_hint="--group-by")
        _error_groups(filters, key, limit, fmt, fields, exclude)
    else:
        if errors:
            if filters.get("event_types") not in (None, ["error"]):
                raise click.UsageError("--errors selects error events; drop --type")
            filters["event_types"] = ["error"]
        filters["limit"] = effective_limit(limit, fmt)
        if filters["limit"] is None:
            filters.pop("limit")
        _emit_events(filters, fmt, fields, exclude)
