"""`stats` and `health`: totals, shares, sizes, and how the pipeline and store are doing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import click
from rich.text import Text

from ..query import GROUP_BY_FIELDS, parse_stats_filter
from ..store.base import Stats
from .context import TelemetryCommand, open_telemetry
from .options import (
    console,
    database_options,
    echo_json,
    format_bytes,
    format_date,
    format_duration,
    format_option,
    print_key_values,
    print_table,
    split_list,
    time_option_value,
)


def agent_shares_text(stats: Stats) -> str:
    """Render agents as `claude (80%), codex (15%), gemini (5%)`, biggest first."""
    shares = stats.agent_shares()
    parts = []
    for name, _count in sorted(stats.agents.items(), key=lambda kv: (-kv[1], kv[0])):
        pct = shares.get(name, 0.0) * 100
        shown = "<1" if 0 < pct < 0.5 else f"{pct:.0f}"
        parts.append(f"{name} ({shown}%)")
    return ", ".join(parts) or "none"


def stats_lines(stats: Stats) -> list[tuple[str, str]]:
    """Return the label/value lines `telemetry stats` prints."""
    if stats.first_timestamp is None:
        date_range = "n/a"
    else:
        date_range = f"{format_date(stats.first_timestamp)} to {format_date(stats.last_timestamp)}"
    average = stats.avg_session_duration_ms
    return [
        ("Total Events", f"{stats.total_events:,}"),
        ("Sessions", f"{stats.total_sessions:,}" + (f" ({stats.active_sessions:,} active)"
                                                   if stats.active_sessions else "")),
        ("Errors", f"{stats.error_events:,}"),
        ("Agents", agent_shares_text(stats)),
        ("Date Range", date_range),
        ("Database Size", format_bytes(stats.database_size_bytes)),
        ("Average Session Duration", format_duration(average) if average is not None else "n/a"),
    ]


def _performance(health: Mapping[str, Any], query_ms: float) -> dict[str, Any]:
    """Pick the writer and store metrics out of a health report."""
    perf: dict[str, Any] = {"stats_query_ms": round(query_ms, 3)}
    for key in ("queue", "writer", "events", "dropped", "stores"):
        if key in health:
            perf[key] = health[key]
    return perf


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list | tuple):
        if value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                _flatten(f"{prefix}[{index}]", item, out)
        else:
            out.append((prefix, ", ".join(str(v) for v in value) or "-"))
    elif isinstance(value, float):
        out.append((prefix, f"{value:,.3f}".rstrip("0").rstrip(".")))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append((prefix, f"{value:,}"))
    else:
        out.append((prefix, "-" if value is None else str(value)))


@click.command(cls=TelemetryCommand)
@click.option("--agent", "--category", "--agent-type", "agents", multiple=True, metavar="NAME",
              help="Only these agents (repeatable or comma-separated).")
@click.option("--from", "--since", "since", metavar="TIME", help="Only events at or after TIME.")
@click.option("--to", "--until", "until", metavar="TIME", help="Only events at or before TIME.")
@click.option("--group-by", "group_by", metavar="FIELD",
              help="Break down by " + ", ".join(GROUP_BY_FIELDS) + " (agent, mode, type accepted).")
@click.option("--performance", is_flag=True, help="Add writer, queue and store metrics.")
@format_option(("table", "json"))
@database_options
def stats(agents: tuple[str, ...], since: str | None, until: str | None, group_by: str | None,
          performance: bool, fmt: str) -> None:
    """Totals: events, sessions, agents with shares, date range, database size, average duration."""
    kwargs: dict[str, Any] = {
        "since": time_option_value(since, "--from"),
        "until": time_option_value(until, "--to"),
        "categories": split_list(agents) or None,
        "group_by": group_by,
    }
    stats_filter = parse_stats_filter(**{k: v for k, v in kwargs.items() if v is not None})
    with open_telemetry() as telemetry:
        started = time.perf_counter()
        result = telemetry.store.get_stats(stats_filter)
        query_ms = (time.perf_counter() - started) * 1000
        health = telemetry.get_health_status() if performance else {}
    if fmt == "json":
        document = result.to_dict()
        if performance:
            document["performance"] = _performance(health, query_ms)
        echo_json(document)
        return
    print_key_values(stats_lines(result))
    if result.group_by:
        rows = [{result.group_by: g.key, "events": g.events, "sessions": g.sessions, "errors": g.errors}
                for g in result.groups]
        console().print()
        print_table(rows, [result.group_by, "events", "sessions", "errors"],
                    title=f"By {result.group_by}", empty="No groups.")
    if performance:
        lines: list[tuple[str, str]] = []
        _flatten("", _performance(health, query_ms), lines)
        console().print()
        print_key_values(lines, title="Performance")


@click.command(cls=TelemetryCommand)
@click.option("--detailed", is_flag=True, help="Show every component's metrics, not only the summary.")
@format_option(("table", "json"))
@database_options
def health(detailed: bool, fmt: str) -> None:
    """Health of the store and the write pipeline; exits 1 when unhealthy."""
    with open_telemetry() as telemetry:
        report = dict(telemetry.get_health_status())
    status = str(report.get("status", "unknown"))
    if fmt == "json":
        echo_json(report if detailed else {k: v for k, v in report.items()
                                           if not isinstance(v, Mapping) or k in ("store", "queue")})
    else:
        style = {"healthy": "green", "degraded": "yellow"}.get(status, "red")
        console().print(Text.assemble(("Status: ", "bold"), (status, f"bold {style}")))
        lines: list[tuple[str, str]] = []
        for key, value in report.items():
            if key == "status":
                continue
            if not detailed and (value is None or (isinstance(value, Mapping) and key != "store")):
                continue
            _flatten(key, value, lines)
        if lines:
            print_key_values(lines)
    if status == "unhealthy":
        raise click.exceptions.Exit(1)
