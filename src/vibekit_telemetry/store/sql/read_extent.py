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

from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, bindparam, func, select
from sqlalchemy.sql.elements import ColumnElement

from ...query import StatsFilter
from ..schema import ROLLUP_PERIODS, events, rollups

_MINUTE = ROLLUP_PERIODS["minute"]
# [lo, hi) in epoch ms: the part of one rollup minute that lies inside the filter's range.
Window = tuple[int, int]


def _literal(name: str) -> Any:
    # Rendered into the SQL text at execution (the compiled form stays cached): a plan-time constant.
    return bindparam(name, type_=BigInteger, literal_execute=True)


@cache
def probe_statement(with_categories: bool) -> Select[Any]:
    """min(timestamp) in [a0, a1) and max(timestamp) in [b0, b1) (literals), of `categories` if asked."""
    e = events.c
    cats = [e.category.in_(bindparam("categories", expanding=True))] if with_categories else []
    return select(
        select(func.min(e.timestamp)).where(e.timestamp >= _literal("a0"), e.timestamp < _literal("a1"),
                                            *cats).scalar_subquery(),
        select(func.max(e.timestamp)).where(e.timestamp >= _literal("b0"), e.timestamp < _literal("b1"),
                                            *cats).scalar_subquery())


@cache
def _minutes_statement(since: bool, until: bool, with_categories: bool) -> Select[Any]:
    """The first and last minute buckets overlapping [since, until], of `categories` if asked.

    Built once per shape: the dashboard polls stats, and building a select costs more than running it.
    Two scalar subqueries, not min() and max() in one select: SQLite probes its index for a lone
    min or max only.
    """
    r = rollups.c
    in_range = [r.period == "minute", *([r.bucket_start > bindparam("after")] if since else []),
                *([r.bucket_start <= bindparam("until")] if until else []),
                *([r.category.in_(bindparam("categories", expanding=True))] if with_categories else [])]
    return select(select(func.min(r.bucket_start)).where(*in_range).scalar_subquery(),
                  select(func.max(r.bucket_start)).where(*in_range).scalar_subquery())


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
    params: dict[str, Any] = {}
    if f.since is not None:
        params["after"] = f.since - _MINUTE  # the minute holding `since` starts after this
    if f.until is not None:
        params["until"] = f.until
    if f.categories:
        params["categories"] = list(f.categories)
    first_m, last_m = conn.execute(_minutes_statement(f.since is not None, f.until is not None,
                                                      bool(f.categories)), params).one()
    if first_m is not None and last_m is not None:
        (a0, a1), (b0, b1) = _window(int(first_m), f.since, f.until), _window(int(last_m), f.since, f.until)
        probe = {"a0": a0, "a1": a1, "b0": b0, "b1": b1,
                 **({"categories": params["categories"]} if f.categories else {})}
        first, last = conn.execute(probe_statement(bool(f.categories)), probe).one()
        if first is not None and last is not None:
            return int(first), int(last)
    e = events.c
    first = conn.execute(select(func.min(e.timestamp)).where(*ev_where)).scalar()
    last = conn.execute(select(func.max(e.timestamp)).where(*ev_where)).scalar()
    return first, last
