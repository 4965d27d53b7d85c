"""The first and last event timestamps of a stats filter, located through the minute rollups.

`min(timestamp)` over the whole events table is one index probe on SQLite, but on PostgreSQL's
partitioned table the planner builds a path for every partition and each of its indexes first: at
1M events over 36 day partitions, 2 ms of planning for 0.4 ms of execution, per statement, and more
as partitions accumulate (bench/RESULTS.md, issue 16). The minute rollups, which the writer keeps in
the same transaction as the events and clean() corrects, name the first and last minute holding a
matching event; the events are then read inside those two minutes only. The minute bounds are
rendered as literals, so PostgreSQL prunes each probe to one partition while planning, whatever the
plan cache decides, and the cost no longer grows with the number of partitions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, Select, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from ...query import StatsFilter
from ..schema import ROLLUP_PERIODS, events, rollups

_MINUTE = ROLLUP_PERIODS["minute"]
# [lo, hi) in epoch ms: the part of one rollup minute that lies inside the filter's range.
Window = tuple[int, int]


def _literal(value: int) -> Any:
    # Rendered into the SQL text at execution (the compiled form stays cached): a plan-time constant.
    return bindparam(None, int(value), BigInteger, literal_execute=True)


def probe_statement(first: Window, last: Window, categories: list[str]) -> Select[Any]:
    """One statement: min(timestamp) in the `first` window and max(timestamp) in the `last` one."""
    e = events.c
    cats = [e.category.in_(categories)] if categories else []

    def inside(w: Window) -> list[ColumnElement[bool]]:
        return [e.timestamp >= _literal(w[0]), e.timestamp < _literal(w[1]), *cats]

    return select(select(func.min(e.timestamp)).where(*inside(first)).scalar_subquery(),
                  select(func.max(e.timestamp)).where(*inside(last)).scalar_subquery())


def _window(minute: int, since: int | None, until: int | None) -> Window:
    lo = minute if since is None else max(since, minute)
    hi = minute + _MINUTE if until is None else min(minute + _MINUTE, until + 1)
    return lo, hi


def time_extent(conn: Connection, f: StatsFilter,
                ev_where: list[ColumnElement[bool]]) -> tuple[int | None, int | None]:
    """First and last timestamps of the events matching the filter's range and categories (None: none).

    ev_where: the same conditions on events, for the exact fallback: read when the rollups know no
    matching minute, or a minute they name holds no matching event any more (a clean() between the
    two reads; a category '' that events store as NULL).
    """
    r = rollups.c
    cats = list(f.categories) if f.categories else []
    in_range = [r.period == "minute",
                *([r.bucket_start > f.since - _MINUTE] if f.since is not None else []),
                *([r.bucket_start <= f.until] if f.until is not None else []),
                *([r.category.in_(cats)] if cats else [])]
    # Two scalar subqueries, not min() and max() in one select: SQLite probes its index for a lone
    # min or max only.
    first_m, last_m = conn.execute(select(
        select(func.min(r.bucket_start)).where(*in_range).scalar_subquery(),
        select(func.max(r.bucket_start)).where(*in_range).scalar_subquery())).one()
    if first_m is not None and last_m is not None:
        first, last = conn.execute(probe_statement(_window(int(first_m), f.since, f.until),
                                                   _window(int(last_m), f.since, f.until), cats)).one()
        if first is not None and last is not None:
            return int(first), int(last)
    e = events.c
    first = conn.execute(select(func.min(e.timestamp)).where(*ev_where)).scalar()
    last = conn.execute(select(func.max(e.timestamp)).where(*ev_where)).scalar()
    return first, last
