"""`stats` and `health`: totals, shares, sizes, and how the pipeline and store are doing."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import click
from rich.text import Text

from ..events import now_ms
from ..query import GROUP_BY_FIELDS, parse_stats_filter
from ..store.base import Stats, WriterRunRecorder
from .context import TelemetryCommand, get_state, open_store, unknown_options_printed_here
from .options import (
    console,
    database_options,
    echo_json,
    format_bytes,
    format_date,
    format_duration,
    format_option,
    format_time,
    print_key_values,
    print_table,
    split_list,
    time_option_value,
)

_DAY_MS = 86_400_000
NO_RUNS = "no writer has recorded metrics in this window"


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
        *_sampling_line(stats.sampling),
    ]


def _sampling_line(sampling: dict[str, Any] | None) -> list[tuple[str, str]]:
    """`Sampling: kept 2,512 of 10,000 sessions (25.1%); scale counts by 3.98` when writers sampled."""
    if not sampling or sampling["sessions_kept"] >= sampling["sessions_seen"]:
        return []
    fraction = sampling["kept_fraction"]
    scale = f"; scale counts by {1 / fraction:.2f}" if fraction else ""
    return [("Sampling", f"kept {sampling['sessions_kept']:,} of {sampling['sessions_seen']:,} sessions "
                         f"({100 * fraction:.1f}%){scale}")]


def _writer_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """One writer_runs row with its rates: events/s over the run's lifetime, average flush time."""
    out = dict(run)
    out["plugins"] = _recorded_plugins(run.get("plugins"))
    seconds = (run["updated_at"] - run["started_at"]) / 1000
    out["events_per_s"] = round(run["events_written"] / seconds, 3) if seconds > 0 else None
    out["avg_batch_ms"] = round(run["total_batch_ms"] / run["batches"], 3) if run["batches"] else None
    return out


def _recorded_plugins(text: Any) -> list[dict[str, Any]]:
    """A writer's plugins as it recorded them (writer_runs.plugins, JSON); [] without plugins or unreadable."""
    if not isinstance(text, str) or not text:
        return []
    try:
        plugins = json.loads(text)
    except ValueError:
        return []
    return [p for p in plugins if isinstance(p, dict)] if isinstance(plugins, list) else []


def _performance(runs: list[dict[str, Any]] | None, since_ms: int, size: int | None,
                 query_ms: float) -> dict[str, Any]:
    """The writers' metrics recorded in the store since since_ms (None: the store keeps none), and the store's."""
    return {
        "since": since_ms,
        "writer_runs": None if runs is None else [_writer_run(r) for r in runs],
        "store": {"database_size_bytes": size, "stats_query_ms": round(query_ms, 3),
                  "queries_per_s": round(1000 / query_ms, 1) if query_ms > 0 else None},
    }


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _print_performance(perf: Mapping[str, Any]) -> None:
    out = console()
    out.print()
    out.print(Text("Performance", style="bold underline"))
    runs = perf["writer_runs"]
    since = format_time(perf["since"])
    if runs is None:
        out.print(Text("Writers: this store does not record writer metrics"))
    elif not runs:
        out.print(Text(f"Writers: {NO_RUNS} (since {since} UTC)"))
    else:
        rows = [{"service": " ".join(p for p in (r["service_name"], r["service_version"]) if p),
                 "host/pid": f"{r['host']}/{r['pid']}", "started": format_time(r["started_at"]),
                 "last seen": format_time(r["updated_at"]), "events": f"{r['events_written']:,}",
                 "events/s": _ms(r["events_per_s"]), "batches": f"{r['batches']:,}",
                 "avg flush ms": _ms(r["avg_batch_ms"]), "max flush ms": _ms(r["max_batch_ms"]),
                 "dropped": f"{r['dropped']:,}", "queue": f"{r['queue_depth']:,}/{r['queue_capacity']:,}"}
                for r in runs]
        print_table(rows, list(rows[0]), title=f"Writers seen since {since} UTC")
    store = perf["store"]
    qps = store["queries_per_s"]
    out.print(Text(f"Store: {format_bytes(store['database_size_bytes'])}, stats query "
                   f"{store['stats_query_ms']:,.1f} ms" + (f" ({qps:,.0f} queries/s)" if qps else "")))


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
@click.option("--breakdown", metavar="KEYS",
              help="Events and sessions per group of agent, mode, type and/or status (comma-separated).")
@click.option("--percentiles", is_flag=True,
              help="With --breakdown (or alone: all sessions): p50/p90/p95/p99 of session duration and "
                   "events per session.")
@click.option("--performance", is_flag=True,
              help="Add the metrics writers recorded in the store (last 24 h, or since --from) and the store's.")
@format_option(("table", "json"))
@database_options
def stats(agents: tuple[str, ...], since: str | None, until: str | None, group_by: str | None,
          breakdown: str | None, percentiles: bool, performance: bool, fmt: str) -> None:
    """Totals: events, sessions, agents with shares, date range, database size, average duration."""
    from .stats_breakdown import breakdown as read_breakdown
    from .stats_breakdown import parse_keys, print_breakdown

    keys = parse_keys(breakdown) if breakdown is not None else ()
    kwargs: dict[str, Any] = {
        "since": time_option_value(since, "--from"),
        "until": time_option_value(until, "--to"),
        "categories": split_list(agents) or None,
        "group_by": group_by,
    }
    stats_filter = parse_stats_filter(**{k: v for k, v in kwargs.items() if v is not None})
    with open_store() as store:
        started = time.perf_counter()
        result = store.get_stats(stats_filter)
        query_ms = (time.perf_counter() - started) * 1000
        from ..reliability import stats_sampling  # what the writers' sample step kept (writer_runs)

        result.sampling = stats_sampling(store, None, stats_filter.since)
        perf: dict[str, Any] = {}
        if performance:
            # Writers run in other processes: read what they recorded (this command runs none).
            since_ms = stats_filter.since if stats_filter.since is not None else now_ms() - _DAY_MS
            runs = store.writer_runs(since_ms=since_ms) if isinstance(store, WriterRunRecorder) else None
            perf = _performance(runs, since_ms, result.database_size_bytes, query_ms)
        groups = read_breakdown(store, keys, percentiles, stats_filter.since, stats_filter.until,
                                stats_filter.categories) if breakdown is not None or percentiles else None
    if fmt == "json":
        document = result.to_dict()
        if groups is not None:
            document["breakdown"] = groups
        if performance:
            document["performance"] = perf
        echo_json(document)
        return
    print_key_values(stats_lines(result))
    if result.group_by:
        rows = [{result.group_by: g.key, "events": g.events, "sessions": g.sessions, "errors": g.errors}
                for g in result.groups]
        console().print()
        print_table(rows, [result.group_by, "events", "sessions", "errors"],
                    title=f"By {result.group_by}", empty="No groups.")
    if groups is not None:
        print_breakdown(groups)
    if performance:
        _print_performance(perf)


def health_report(store: Any) -> dict[str, Any]:
    """The store's health and what the writers recorded in it over the last day.

    This command runs no writer of its own: the writers are the applications and servers writing
    to the store, seen through the metrics they record (writer_runs). Unhealthy when the store is
    unreachable; degraded when a recent writer dropped events.
    """
    report = dict(store.health())
    reachable = bool(report.get("reachable", True))
    writers: list[dict[str, Any]] | None = None
    if reachable and isinstance(store, WriterRunRecorder):
        writers = [_writer_run(r) for r in store.writer_runs(since_ms=now_ms() - _DAY_MS)]
    dropped = sum(int(r.get("dropped") or 0) for r in writers or ())
    status = "unhealthy" if not reachable else "degraded" if dropped else "healthy"
    from ..health import plugin_issues
    from ..reliability import cli_health_extras

    # Each writer's plugins as it last recorded them (issue 15); a disabled one is an issue.
    plugins = [{"writer": f"{r.get('host')}:{r.get('pid')}", **p} for r in writers or () for p in r["plugins"]]
    result = cli_health_extras({"status": status, "store": report, "stores": [report],
                                "writers": {"recorded": writers is not None, "seen_last_24h": len(writers or ()),
                                            "dropped_last_24h": dropped, "runs": writers or []},
                                "plugins": plugins})
    issues = [issue for r in writers or ()
              for issue in plugin_issues(r["plugins"], f" (writer {r.get('host')}:{r.get('pid')})")]
    if issues:
        result["issues"] = [*result["issues"], *issues]
        result["healthy"] = False
        if result["status"] == "healthy":
            result["status"] = "degraded"
    return result


@click.command(cls=TelemetryCommand)
@click.option("--detailed", is_flag=True, help="Show every writer's metrics, not only the summary.")
@format_option(("table", "json"))
@database_options
def health(detailed: bool, fmt: str) -> None:
    """Health of the store and of the writers that record metrics in it; exits 1 when unhealthy."""
    from ..config import unknown_config_options

    with unknown_options_printed_here(), open_store() as store:
        report = health_report(store)
    # A misspelt option is silently a default: say so here too (it does not make the store unhealthy).
    report["config_warnings"] = [option.message() for option in unknown_config_options(get_state().config)]
    status = str(report["status"])
    if fmt == "json":
        echo_json(report if detailed else {k: v for k, v in report.items() if k not in ("stores", "plugins")}
                  | {"writers": {k: v for k, v in report["writers"].items() if k != "runs"}})
    else:
        style = {"healthy": "green", "degraded": "yellow"}.get(status, "red")
        console().print(Text.assemble(("Status: ", "bold"), (status, f"bold {style}")))
        lines: list[tuple[str, str]] = []
        _flatten("store", report["store"], lines)
        writers = report["writers"] if detailed else {k: v for k, v in report["writers"].items() if k != "runs"}
        _flatten("writers", writers, lines)
        if detailed:  # each writer's plugins: name, version, enabled, calls, errors, timeouts, why disabled
            _flatten("plugins", report["plugins"], lines)
        lines.extend(("issue", issue) for issue in report["issues"])  # spools, drops, an unreachable store
        lines.extend(("config", warning) for warning in report["config_warnings"])
        print_key_values(lines)
    if status == "unhealthy":
        raise click.exceptions.Exit(1)
