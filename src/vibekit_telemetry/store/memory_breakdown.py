"""MemoryStore's ReadBreakdown methods: the SQL stores' answers, computed from the events and sessions held."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from ..events import TelemetryEvent
from ._batch import ROLLUP_PERIODS
from .base import (
    EVENT_BREAKDOWN_KEYS,
    SESSION_BREAKDOWN_KEYS,
    EventGroup,
    RollupPoint,
    Session,
    SessionGroup,
    check_breakdown_keys,
)
from .breakdown import MINUTE, check_categories, check_window, nearest_rank, none_if_empty, ordered_groups


class MemoryBreakdown:
    """A mixin for MemoryStore (its lock, events by time and sessions)."""

    _lock: threading.Lock
    _events: dict[str, TelemetryEvent]
    _order: list[tuple[int, str]]
    _sessions: dict[str, Session]

    def _window_events(self, since: int, until: int, categories: list[str]) -> list[TelemetryEvent]:
        """Events in the whole minutes [since, until] (what the rollups of those minutes count)."""
        lo, end = since // MINUTE * MINUTE, until // MINUTE * MINUTE + MINUTE
        with self._lock:
            first = bisect.bisect_left(self._order, (lo, ""))
            last = bisect.bisect_left(self._order, (end, ""))
            found = [self._events[eid] for _, eid in self._order[first:last]]
        return [e for e in found if not categories or e.category in categories]

    def rollup_totals(self, since: int, until: int, categories: Sequence[str] = (),
                      bucket: str | None = None) -> list[RollupPoint]:
        """Return the window's events per agent and event type, per bucket or in all (see ReadBreakdown)."""
        lo, hi = check_window(since, until, bucket)
        cats = check_categories(categories)
        size = ROLLUP_PERIODS[bucket] if bucket else None
        first = lo // MINUTE * MINUTE
        points: dict[tuple[int, str, str], RollupPoint] = {}
        for e in self._window_events(lo, hi, cats):
            b = first if size is None else e.timestamp // size * size
            key = (b, e.category or "", e.event_type)
            p = points.get(key)
            if p is None:
                p = points[key] = RollupPoint(b, key[1], key[2], 0, 0, 0.0, 0)
            p.count += 1
            p.error_count += e.event_type == "error"
            if e.duration is not None:
                p.duration_sum += e.duration
                p.duration_count += 1
                p.duration_min = e.duration if p.duration_min is None else min(p.duration_min, e.duration)
                p.duration_max = e.duration if p.duration_max is None else max(p.duration_max, e.duration)
        return [points[k] for k in sorted(points)]

    def event_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                        categories: Sequence[str] = ()) -> list[EventGroup]:
        """Return events and errors per combination of the keys' values, most first."""
        keys = check_breakdown_keys(by, EVENT_BREAKDOWN_KEYS)
        lo, hi = check_window(since, until)
        groups: dict[tuple[str | None, ...], EventGroup] = {}
        for e in self._window_events(lo, hi, check_categories(categories)):
            key = tuple(none_if_empty(getattr(e, k)) for k in keys)
            g = groups.get(key)
            if g is None:
                g = groups[key] = EventGroup(key, 0, 0)
            g.events += 1
            g.errors += e.event_type == "error"
        return ordered_groups(list(groups.values()), lambda g: g.events)

    def session_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                          categories: Sequence[str] = (), percentiles: bool = False) -> list[SessionGroup]:
        """Return sessions per combination of the keys' values, most first, with percentiles when asked."""
        keys = check_breakdown_keys(by, SESSION_BREAKDOWN_KEYS)
        lo, hi = check_window(since, until)
        cats = check_categories(categories)
        with self._lock:
            chosen = [s for s in self._sessions.values()
                      if lo <= s.start_time <= hi and (not cats or s.category in cats)]
        groups: dict[tuple[str | None, ...], SessionGroup] = {}
        durations: dict[tuple[str | None, ...], list[float]] = {}
        counts: dict[tuple[str | None, ...], list[float]] = {}
        for s in chosen:
            key = tuple(none_if_empty(getattr(s, k)) for k in keys)
            g = groups.get(key)
            if g is None:
                g = groups[key] = SessionGroup(key, 0, 0, 0, 0.0, 0)
            g.sessions += 1
            g.active += s.status == "active"
            if s.end_time is not None:
                g.ended += 1
                if s.duration is not None:
                    g.duration_sum += s.duration
                    g.duration_count += 1
                    durations.setdefault(key, []).append(s.duration)
                    counts.setdefault(key, []).append(float(s.event_count))
        if percentiles:
            for key, g in groups.items():
                g.duration_percentiles = nearest_rank(sorted(durations.get(key, ())))
                g.events_percentiles = nearest_rank(sorted(counts.get(key, ())))
        return ordered_groups(list(groups.values()), lambda g: g.sessions)
