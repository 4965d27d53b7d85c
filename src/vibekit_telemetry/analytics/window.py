"""The metrics of one time window, from the store's rollups (one grouped read) and the live sketches.

`read_window` asks the store for the window's sums per agent, event type and bucket (hours for
windows over 3 hours, else minutes), already added up in the database (ReadBreakdown.rollup_totals:
hour rollups inside, minute rollups at the edges), then the sessions started in it (session
rollups) and, for hour buckets, the current minute. `metrics_body` turns that into the answer of
`get_metrics`; insights reuse the same read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import ValidationError
from ..store.base import ReadBreakdown, RollupPoint, SessionGroup
from ..timeparse import duration_ms

MINUTE: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000
# Beyond this span a window is bucketed by hour (tens of rows per hour instead of thousands).
MINUTE_BUCKETS_UP_TO: Final = 3 * HOUR


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


def range_ms(value: str | int | float, field: str = "time_range") -> int:
    """Return a window length in ms from a duration (1h, 24h, 7d) or a positive number of ms."""
    if isinstance(value, bool):
        raise ValidationError(field, "a duration such as 1h, 24h or 7d", value)
    if isinstance(value, int | float):
        if value <= 0:
            raise ValidationError(field, "a positive number of milliseconds or a duration such as 1h", value)
        return int(value)
    if not isinstance(value, str):
        raise ValidationError(field, "a duration such as 1h, 24h or 7d", value)
    return duration_ms(value, field)


def categories_of(value: Iterable[str] | str | None) -> list[str]:
    """Return agent names from a list or a comma-separated string, or raise naming `categories`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise ValidationError("categories", "agent names (strings)", item)
    return out


def breakdown_store(store: object) -> ReadBreakdown:
    """The store as a ReadBreakdown, or a ValidationError naming it (analytics never scans raw events)."""
    if not isinstance(store, ReadBreakdown):
        raise ValidationError("store", "a store with rollup windows (ReadBreakdown)", type(store).__name__)
    return store


@dataclass(slots=True)
class Window:
    """What one read of a window returned: rollup sums per bucket, the sessions, the current minute."""

    since: int
    until: int
    categories: list[str]
    period: str
    points: list[RollupPoint]
    sessions: SessionGroup | None
    current_minute_events: int
    sums: dict[str, Any]  # totals(points), computed once for metrics, trends and recommendations


def read_window(store: object, since: int, until: int, cats: Sequence[str]) -> Window:
    """Read a window's rollup sums (per hour or minute), its sessions and the current minute's events."""
    reader = breakdown_store(store)
    period = "minute" if until - since <= MINUTE_BUCKETS_UP_TO else "hour"
    points = reader.rollup_totals(since, until, cats, period)
    current = until // MINUTE * MINUTE
    if period == "minute":
        current_events = sum(p.count for p in points if p.bucket_start == current)
    else:  # one small read: the current minute's rows
        current_events = sum(p.count for p in reader.rollup_totals(current, until, cats))
    groups = reader.session_breakdown((), since, until, cats)
    return Window(since, until, list(cats), period, points, groups[0] if groups else None, current_events,
                  totals(points))


def window_sums(store: object, since: int, until: int, cats: Sequence[str]) -> list[RollupPoint]:
    """A window's sums per agent and event type, no buckets (one grouped row each)."""
    return breakdown_store(store).rollup_totals(since, until, cats)


def totals(points: Iterable[RollupPoint]) -> dict[str, Any]:
    """Sum rollup points: events, errors, durations (session ends apart), by type and per agent."""
    count = errors = dcount = end_dcount = 0
    dsum = end_dsum = 0.0
    dmin: float | None = None
    dmax: float | None = None
    by_type: dict[str, int] = {}
    agents: dict[str, list[int]] = {}
    for p in points:
        count += p.count
        errors += p.error_count
        by_type[p.event_type] = by_type.get(p.event_type, 0) + p.count
        agent = agents.setdefault(p.category, [0, 0])
        agent[0] += p.count
        agent[1] += p.error_count
        if p.event_type == "end":
            end_dsum += p.duration_sum
            end_dcount += p.duration_count
            continue
        dsum += p.duration_sum
        dcount += p.duration_count
        if p.duration_min is not None:
            dmin = p.duration_min if dmin is None else min(dmin, p.duration_min)
        if p.duration_max is not None:
            dmax = p.duration_max if dmax is None else max(dmax, p.duration_max)
    ranked = sorted(agents.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {"count": count, "errors": errors, "dsum": dsum, "dcount": dcount, "dmin": dmin, "dmax": dmax,
            "end_dsum": end_dsum, "end_dcount": end_dcount, "by_type": by_type,
            "agents": [{"agent": a, "events": n, "errors": e, "error_rate": round(100.0 * e / n, 3) if n else 0.0}
                       for a, (n, e) in ranked]}


def rounded(value: float | None) -> float | None:
    """Round to 3 decimals, keeping None."""
    return None if value is None else round(value, 3)


def metrics_body(window: Window, live: Mapping[str, Any] | None, live_events: int | None) -> dict[str, Any]:
    """The get_metrics answer for a window read (live: LiveMetrics.summary of it, None when not recording)."""
    span = window.until - window.since
    sums = window.sums
    per_bucket: dict[int, int] = {}
    per_hour: dict[int, int] = {}
    for p in window.points:
        per_bucket[p.bucket_start] = per_bucket.get(p.bucket_start, 0) + p.count
        hour = p.bucket_start // HOUR * HOUR
        per_hour[hour] = per_hour.get(hour, 0) + p.count
    peak = max(per_bucket.items(), key=lambda kv: kv[1], default=(None, 0))
    peak_hour = max(per_hour.items(), key=lambda kv: kv[1], default=(None, 0))
    latency = live["latency"] if live else {}
    events_total = sums["count"]
    s = window.sessions
    return {
        "time_range": {"since": window.since, "until": window.until, "minutes": round(span / MINUTE, 3),
                       "categories": window.categories},
        "events": {"total": events_total, "per_minute": round(events_total / max(1.0, span / MINUTE), 3),
                   "by_type": sums["by_type"]},
        "sessions": {"total": s.sessions if s else 0, "active": s.active if s else 0,
                     "avg_duration_ms": rounded(s.duration_sum / s.duration_count) if s and s.duration_count
                     else None},
        "errors": {"total": sums["errors"],
                   "rate": round(100.0 * sums["errors"] / events_total, 3) if events_total else 0.0},
        "performance": {
            "avg_latency": rounded(sums["dsum"] / sums["dcount"]) if sums["dcount"] else None,
            "min": rounded(sums["dmin"]), "max": rounded(sums["dmax"]),
            "p50": latency.get("p50"), "p95": latency.get("p95"), "p99": latency.get("p99"),
            "time_to_first_chunk": live["time_to_first_chunk"] if live else None,
        },
        "throughput": {"current_per_minute": window.current_minute_events,
                       "peak_per_bucket": peak[1], "peak_bucket": peak[0], "bucket": window.period,
                       "peak_hour": peak_hour[0], "peak_hour_events": peak_hour[1]},
        "top_agents": sums["agents"][:10],
        "tokens": live["tokens"] if live else None,
        "cost": live["cost"] if live else None,
        "custom": live["custom"] if live else {},
        "source": {"series": f"rollups:{window.period}", "live": live_events is not None,
                   "live_events": live_events or 0},
    }
