"""`metrics` and the `analytics` group: dashboard, report, sessions, performance, anomalies, predict."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import click

from ..errors import ValidationError
from ..events import SESSION_STATUSES, now_ms
from ..query import SessionFilter
from ..store.base import QueryableStore, ReadInsights
from ..timeparse import duration_ms
from .context import TelemetryCommand, TelemetryGroup, _config, open_store
from .options import (
    console,
    database_options,
    echo_json,
    format_duration,
    format_option,
    format_time,
    print_key_values,
    print_table,
    split_list,
    time_option_value,
)

if TYPE_CHECKING:  # the engine itself is imported when a command runs
    from ..analytics.engine import Analytics

# Live metrics (percentiles, tokens, cost) in a CLI process are rebuilt from at most this many events.
_WARM_LIMIT = 100_000

since_option = click.option("--since", "--from", "since", default=None, metavar="TIME",
                            help="Start of the window: 1h, 24h, 7d, yesterday, ISO … [default: per command].")
agent_option = click.option("--agent", "--category", "agents", multiple=True, metavar="NAME",
                            help="Only these agent types (repeatable or comma-separated).")


def _span(since: str | None, default: str) -> int:
    """The window length in ms from --since (a duration or a point in time)."""
    if since is None:
        return duration_ms(default)
    start = time_option_value(since, "--since")
    assert start is not None
    return max(60_000, now_ms() - start)


@contextlib.contextmanager
def _engine(span_ms: int, *, warm: bool = True) -> Iterator[Analytics]:
    """An analytics engine over the selected database; live metrics rebuilt from the window's events."""
    from ..analytics.engine import Analytics

    options = _config().analytics.model_dump()
    with open_store() as store:
        engine = Analytics(lambda: store, options, emit=None)
        if warm:
            engine.warm_from_store(now_ms() - span_ms, _WARM_LIMIT)
        yield engine


def _metric_lines(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    perf, ttfc = m["performance"], m["performance"].get("time_to_first_chunk") or {}
    cost, tokens = m.get("cost") or {}, m.get("tokens") or {}
    agents = ", ".join(f"{a['agent'] or '(none)'} {a['events']:,}" for a in m["top_agents"][:5]) or "none"
    return [
        ("Window", f"last {m['time_range']['minutes']:g} min"),
        ("Events", f"{m['events']['total']:,} ({m['events']['per_minute']:g}/min)"),
        ("Sessions", f"{m['sessions']['total']:,} ({m['sessions']['active']:,} active)"),
        ("Error rate", f"{m['errors']['rate']:g}% ({m['errors']['total']:,} errors)"),
        ("Latency avg / p50 / p95 / p99", " / ".join(format_duration(perf.get(k))
                                                     for k in ("avg_latency", "p50", "p95", "p99"))),
        ("Time to first chunk p50 / p95", " / ".join(format_duration(ttfc.get(k)) for k in ("p50", "p95"))),
        ("Peak", f"{m['throughput']['peak_per_bucket']:,} events per {m['throughput']['bucket']}"),
        ("Top agents", agents),
        ("Tokens", f"{tokens.get('total', 0):,} ({tokens.get('prompt', 0):,} prompt)"),
        ("Cost", f"${cost.get('total_usd', 0):.4f}"),
    ]


@click.command(cls=TelemetryCommand)
@since_option
@agent_option
@format_option(("table", "json"))
@database_options
def metrics(since: str | None, agents: tuple[str, ...], fmt: str) -> None:
    """Live metrics: events per minute, sessions, error rate, latency percentiles, tokens, cost."""
    span = _span(since, "1h")
    with _engine(span) as engine:
        result = engine.get_metrics(span, split_list(agents))
    if fmt == "json":
        echo_json(result)
        return
    print_key_values(_metric_lines(result), title="Metrics")


@click.group(cls=TelemetryGroup)
@database_options
def analytics() -> None:
    """Analytics over the store: live dashboard, reports, sessions, performance, anomalies, forecasts."""


@analytics.command(cls=TelemetryCommand)
@since_option
@click.option("--interval", default="2s", show_default=True, help="Refresh every INTERVAL.")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Stop after this many refreshes [default: until Ctrl-C].")
@database_options
def dashboard(since: str | None, interval: str, iterations: int | None) -> None:
    """A live terminal view of the metrics, refreshing until Ctrl-C."""
    from rich.live import Live
    from rich.table import Table

    span, pause = _span(since, "1h"), duration_ms(interval, "--interval") / 1000

    def render(m: Mapping[str, Any]) -> Table:
        """One frame of the view."""
        table = Table(title=f"vibekit telemetry — {format_time(now_ms())}", show_header=False)
        for label, value in _metric_lines(m):
            table.add_row(label, value)
        return table

    shown = 0
    with Live(console=console(), auto_refresh=False) as live:
        try:
            while iterations is None or shown < iterations:
                with _engine(span) as engine:
                    live.update(render(engine.get_metrics(span)), refresh=True)
                shown += 1
                if iterations is None or shown < iterations:
                    time.sleep(pause)
        except KeyboardInterrupt:
            pass


@analytics.command(cls=TelemetryCommand)
@since_option
@agent_option
@format_option(("table", "json"))
@database_options
def report(since: str | None, agents: tuple[str, ...], fmt: str) -> None:
    """Insights for a window: metrics, anomalies, trends and recommendations with their evidence."""
    span = _span(since, "24h")
    with _engine(span) as engine:
        result = engine.get_insights(span, split_list(agents))
    if fmt == "json":
        echo_json(result)
        return
    print_key_values(_metric_lines(result["metrics"]), title="Report")
    print_table([{"metric": t["metric"], "direction": t["direction"], "change_pct": t["change_pct"]}
                 for t in result["trends"]], ["metric", "direction", "change_pct"], title="Trends")
    print_table([{"severity": r["severity"], "message": r["message"]} for r in result["recommendations"]],
                ["severity", "message"], title="Recommendations")
    _anomaly_table(result["anomalies"])


def _anomaly_table(found: list[dict[str, Any]]) -> None:
    print_table([{"time": format_time(a["timestamp"]), "metric": a["metric"], "severity": a["severity"],
                  "observed": round(a["observed"], 3), "expected": round(a["expected"], 3),
                  "confidence": a["confidence"], "description": a["description"]} for a in found],
                ["time", "metric", "severity", "observed", "expected", "confidence", "description"],
                title=f"Anomalies ({len(found)})")


@analytics.command(cls=TelemetryCommand)
@since_option
@agent_option
@click.option("--status", "statuses", multiple=True, metavar="STATUS",
              help="Session status: " + ", ".join(SESSION_STATUSES) + " (repeatable or comma-separated).")
@format_option(("table", "json"))
@database_options
def sessions(since: str | None, agents: tuple[str, ...], statuses: tuple[str, ...], fmt: str) -> None:
    """Session analytics: counts by status, duration percentiles, the longest sessions."""
    from ..analytics.sketch import QuantileSketch

    span = _span(since, "24h")
    wanted_status = split_list(statuses)
    for status in wanted_status:
        if status not in SESSION_STATUSES:
            raise ValidationError("--status", f"one of {', '.join(SESSION_STATUSES)}", status)
    f = SessionFilter(statuses=wanted_status, categories=split_list(agents), since=now_ms() - span)
    by_status: dict[str, int] = {}
    durations = QuantileSketch()
    with open_store() as store:
        for session in _all_sessions(store, f):
            by_status[session.status] = by_status.get(session.status, 0) + 1
            if session.duration is not None:
                durations.add(session.duration)
        longest = store.longest_sessions(f, 5) if isinstance(store, ReadInsights) else []
    result: dict[str, Any] = {"sessions": sum(by_status.values()), "by_status": by_status,
              "duration": {"avg": durations.mean, "p50": durations.quantile(0.5),
                           "p95": durations.quantile(0.95), "p99": durations.quantile(0.99)},
              "longest": [{"id": s.id, "category": s.category, "status": s.status, "duration": s.duration}
                          for s in longest]}
    if fmt == "json":
        echo_json(result)
        return
    d = result["duration"]
    print_key_values([("Sessions", f"{result['sessions']:,}"),
                      ("By status", ", ".join(f"{k} {v:,}" for k, v in by_status.items()) or "none"),
                      ("Duration avg / p50 / p95 / p99",
                       " / ".join(format_duration(d[k]) for k in ("avg", "p50", "p95", "p99")))],
                     title="Sessions")
    print_table(result["longest"], ["id", "category", "status", "duration"], title="Longest")


def _all_sessions(store: QueryableStore, f: SessionFilter, page: int = 5000) -> Iterator[Any]:
    """Page through the window's sessions (bounded pages, constant memory)."""
    offset = 0
    while True:
        batch = store.get_sessions(SessionFilter(statuses=f.statuses, categories=f.categories, since=f.since,
                                                 limit=page, offset=offset))
        yield from batch
        if len(batch) < page:
            return
        offset += page


@analytics.command(cls=TelemetryCommand)
@since_option
@click.option("--monitor", is_flag=True, help="Keep evaluating every --interval until Ctrl-C.")
@click.option("--interval", default="60s", show_default=True, help="Evaluation interval with --monitor.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Stop after this many evaluations.")
@click.option("--alerts", "show_alerts", is_flag=True, help="Evaluate alerts (thresholds and anomalies).")
@click.option("--threshold", "thresholds", multiple=True, metavar="METRIC:VALUE",
              help="Alert when METRIC goes above VALUE, e.g. response_time:5000 (repeatable).")
@format_option(("table", "json"))
@database_options
def performance(since: str | None, monitor: bool, interval: str, iterations: int | None, show_alerts: bool,
                thresholds: tuple[str, ...], fmt: str) -> None:
    """Latency, time to first chunk and throughput; with --monitor --alerts, alerts as they fire."""
    span = _span(since, "1h")
    pause = duration_ms(interval, "--interval") / 1000
    rules = [_threshold(t) for t in thresholds]
    runs = 0
    with _engine(span) as engine:
        for metric, value in rules:
            engine.set_alert_threshold(metric, value, "above", "warning", window=span, cooldown=0)
        try:
            while True:
                m = engine.get_metrics(span)
                fired = engine.evaluate()["alerts"] if show_alerts or rules else []
                _show_performance(m, fired, fmt)
                runs += 1
                if not monitor or (iterations is not None and runs >= iterations):
                    return
                time.sleep(pause)
        except KeyboardInterrupt:
            return


def _threshold(text: str) -> tuple[str, float]:
    metric, sep, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not metric.strip() or not math.isfinite(number):
        raise ValidationError("--threshold", "METRIC:NUMBER such as response_time:5000", text)
    return metric.strip(), number


def _show_performance(m: Mapping[str, Any], fired: list[dict[str, Any]], fmt: str) -> None:
    perf = m["performance"]
    if fmt == "json":
        echo_json({"performance": perf, "throughput": m["throughput"], "events": m["events"], "alerts": fired})
        return
    print_key_values(_metric_lines(m)[3:7], title=f"Performance at {format_time(now_ms())}")
    for alert in fired:
        click.echo(f"ALERT [{alert['severity']}] {alert['message']}")


@analytics.command(cls=TelemetryCommand)
@since_option
@click.option("--sensitivity", type=click.Choice(["low", "medium", "high"]), default=None,
              help="Detector sensitivity [default: the config's, medium].")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME",
              help="throughput, error_rate, response_time, session_duration, errors (repeatable).")
@format_option(("table", "json"))
@database_options
def anomalies(since: str | None, sensitivity: str | None, metric_names: tuple[str, ...], fmt: str) -> None:
    """Anomalies in the metric series (the window's points scored against the history before them)."""
    span = _span(since, "24h")
    with _engine(span, warm=False) as engine:
        found = engine.detect_anomalies(split_list(metric_names) or None, sensitivity=sensitivity, time_range=span)
    if fmt == "json":
        echo_json({"anomalies": found})
        return
    _anomaly_table(found)


@analytics.command(cls=TelemetryCommand)
@click.option("--metric", "metric_names", multiple=True, metavar="NAME", help="Series to forecast (repeatable).")
@click.option("--minutes", "minutes_ahead", type=click.IntRange(1, 10_080), default=60, show_default=True,
              help="How far ahead.")
@format_option(("table", "json"))
@database_options
def predict(metric_names: tuple[str, ...], minutes_ahead: int, fmt: str) -> None:
    """Forecast series minutes ahead with 95 % intervals and the backtest error."""
    with _engine(0, warm=False) as engine:
        result = engine.generate_predictions(split_list(metric_names) or None, minutes_ahead)
    if fmt == "json":
        echo_json(result)
        return
    rows = []
    for name, f in result.items():
        if "error" in f:
            rows.append({"metric": name, "at": "", "value": f["error"], "interval": "", "backtest_mape": ""})
            continue
        rows.append({"metric": name, "at": format_time(f["timestamps"][-1]), "value": round(f["values"][-1], 3),
                     "interval": f"{f['lower'][-1]:.4g} … {f['upper'][-1]:.4g}",
                     "backtest_mape": f["backtest"].get("mape")})
    print_table(rows, ["metric", "at", "value", "interval", "backtest_mape"], title="Predictions")
