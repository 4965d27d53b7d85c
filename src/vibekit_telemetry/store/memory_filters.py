"""How the memory store filters and orders: the SQL stores' WHERE and ORDER BY, in Python."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import TelemetryEvent
from ..query import QueryFilter, SessionFilter
from .base import Session


def in_range(ts: int, since: int | None, until: int | None) -> bool:
    """Whether ts lies in [since, until] (None: unbounded)."""
    return (since is None or ts >= since) and (until is None or ts <= until)


def matches(e: TelemetryEvent, f: QueryFilter, needle: str | None) -> bool:
    """Whether an event matches a query filter (needle: `contains` lowercased)."""
    if not in_range(e.timestamp, f.since, f.until):
        return False
    if (f.session_ids and e.session_id not in f.session_ids) or (
            f.event_types and e.event_type not in f.event_types) or (
            f.categories and e.category not in f.categories) or (f.actions and e.action not in f.actions):
        return False
    if needle is not None and needle not in (e.label or "").lower() and needle not in (
            e.stream_data or "").lower():
        return False
    meta = e.metadata or {}
    return all(meta_equal(meta, k, v) for k, v in f.metadata.items())


def meta_equal(meta: dict[str, Any], key: str, value: Any) -> bool:
    """Compare one metadata value the way the SQL stores do: JSON types must agree, numbers by value."""
    got = meta.get(key)
    if value is None:
        return got is None  # a missing key matches None, as JSON null and absence both read as NULL
    if isinstance(value, bool) or isinstance(got, bool):
        return got is value
    if isinstance(value, int | float):
        return isinstance(got, int | float) and got == value
    return bool(got == value)


def session_sort_key(f: SessionFilter) -> Callable[[Session], tuple[Any, ...]]:
    """As the SQL stores order a listing: the sort key (no duration below any duration), start time, id."""
    if f.sort_by == "start_time":
        return lambda s: (s.start_time, s.id)
    name = f.sort_by
    return lambda s: ((v := getattr(s, name)) is not None, v or 0, s.start_time, s.id)


def position_key(f: SessionFilter) -> tuple[Any, ...]:
    """A cursor's position (f.after) as _session_sort_key orders it."""
    after = f.after or ()
    return after if f.sort_by == "start_time" else (after[0] is not None, after[0] or 0, *after[1:])


def beyond(key: tuple[Any, ...], at: tuple[Any, ...], order: str) -> bool:
    """Whether a row's order key comes after a cursor's position in the listing's order."""
    return key < at if order == "desc" else key > at


def session_matches(s: Session, f: SessionFilter) -> bool:
    """Whether a session matches a sessions filter."""
    if f.statuses and s.status not in f.statuses:
        return False
    if f.categories and s.category not in f.categories:
        return False
    if not in_range(s.start_time, f.since, f.until):
        return False
    return f.with_errors is None or (s.error_count > 0) == f.with_errors
