"""Metric series from the store's rollups (read API `rollup_series`), one value per bucket."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..errors import ValidationError
from ..store.base import ReadSeries, RollupPoint

# The series anomaly detection and predictions understand, and how each is derived from rollups.
SERIES_METRICS: Final = {
    "throughput": "events per bucket",
    "error_rate": "error events as % of events per bucket",
    "response_time": "mean duration (ms) of events that carry one, session ends excluded",
    "session_duration": "mean duration (ms) of sessions ending in the bucket (end events' durations)",
    "errors": "error events per bucket",
}
MIN_RATE_EVENTS: Final = 5
METRIC_ALIASES: Final = {"latency": "response_time", "events": "throughput", "error": "error_rate",
                         "duration": "session_duration"}


def metric_name(name: str, field: str = "metrics") -> str:
    """Return the canonical series name, or raise naming the field."""
    canonical = METRIC_ALIASES.get(name, name)
    if canonical not in SERIES_METRICS:
        raise ValidationError(field, f"one of {', '.join(SERIES_METRICS)}", name)
    return canonical


def rollup_points(store: object, period: str, since: int, until: int,
                  categories: Sequence[str] = ()) -> list[RollupPoint]:
    """Read rollup points through the read API; a store without it has no series."""
    if not isinstance(store, ReadSeries):
        raise ValidationError("store", "a store with rollup series (ReadSeries)", type(store).__name__)
    return store.rollup_series(period, since, until, categories)


def build_series(points: Sequence[RollupPoint], metric: str, size_ms: int, since: int,
                 until: int) -> tuple[list[int], list[float]]:
    """Turn rollup points into one value per bucket; empty buckets count 0 events (rates are skipped)."""
    return build_all_series(points, [metric_name(metric)], size_ms, since, until)[metric_name(metric)]


def build_all_series(points: Sequence[RollupPoint], metrics: Sequence[str], size_ms: int, since: int,
                     until: int) -> dict[str, tuple[list[int], list[float]]]:
    """Every asked series from one pass over the points (per bucket: events, errors, durations of
    session ends and of everything else), then one value per bucket and metric."""
    count: dict[int, int] = {}
    errors: dict[int, int] = {}
    # Per bucket: [duration sum, count] of non-end events (response time), then of session ends.
    durations: dict[int, list[float]] = {}
    for p in points:
        b = p.bucket_start
        count[b] = count.get(b, 0) + p.count
        errors[b] = errors.get(b, 0) + p.error_count
        if p.duration_count:
            d = durations.get(b)
            if d is None:
                d = durations[b] = [0.0, 0.0, 0.0, 0.0]
            at = 2 if p.event_type == "end" else 0
            d[at] += p.duration_sum
            d[at + 1] += p.duration_count
    first = since // size_ms * size_ms
    if count:
        # Start where the data starts: leading empty buckets are "not recording yet", not zero traffic.
        first = max(first, min(count))
    buckets = range(first, until // size_ms * size_ms + 1, size_ms)
    out: dict[str, tuple[list[int], list[float]]] = {}
    for metric in metrics:
        ts: list[int] = []
        vs: list[float] = []
        for b in buckets:
            n = count.get(b, 0)
            if metric == "throughput":
                value: float | None = float(n)
            elif metric == "errors":
                value = float(errors.get(b, 0))
            elif metric == "error_rate":
                # A rate over a handful of events is noise (1 error in 2 events is 50 %): skip such buckets.
                value = 100.0 * errors.get(b, 0) / n if n >= MIN_RATE_EVENTS else None
            else:
                d = durations.get(b)
                at = 2 if metric == "session_duration" else 0
                value = d[at] / d[at + 1] if d is not None and d[at + 1] else None
            if value is not None:
                ts.append(b)
                vs.append(value)
        out[metric] = (ts, vs)
    return out
