"""The ReadBreakdown methods of SQLStore: analytics windows and breakdowns, computed in the database.

Event counts come from the rollups (minute rows only at a window's edges, see store/breakdown.py),
sessions from session_rollups when only agents are asked, else from the sessions table (one row
per session, by ix_sessions_sort_start; never the events). Percentiles are nearest-rank values
picked with ROW_NUMBER() inside the database: only four rows per group and metric come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from ..base import (
    BREAKDOWN_PERCENTILES,
    EVENT_BREAKDOWN_KEYS,
    SESSION_BREAKDOWN_KEYS,
    EventGroup,
    RollupPoint,
    SessionGroup,
    check_breakdown_keys,
)
from ..breakdown import check_categories, check_window, none_if_empty, ordered_groups, rollup_pieces
from ..schema import ROLLUP_PERIODS, rollups, session_rollups, sessions
from . import read_stats

# Built once per shape (pieces, bucket, agent filter): building a select costs more than running it.
_TOTALS: dict[tuple[int, str | None, bool], Select[Any]] = {}


def _totals_stmt(pieces: int, bucket: str | None, with_categories: bool) -> Select[Any]:
    key = (pieces, bucket, with_categories)
    cached = _TOTALS.get(key)
    if cached is not None:
        return cached
    r = rollups.c
    ranges = [and_(r.period == bindparam(f"p{i}"), r.bucket_start >= bindparam(f"lo{i}", type_=BigInteger),
                   r.bucket_start < bindparam(f"hi{i}", type_=BigInteger)) for i in range(pieces)]
    where: list[ColumnElement[bool]] = [or_(*ranges)]
    if with_categories:
        where.append(r.category.in_(bindparam("categories", expanding=True)))
    sums = (func.sum(r.count), func.sum(r.error_count), func.sum(r.duration_sum), func.sum(r.duration_count),
            func.min(r.duration_min), func.max(r.duration_max))
    stmt: Any
    if bucket is None:
        stmt = select(r.category, r.event_type, *sums).where(*where).group_by(r.category, r.event_type) \
            .order_by(r.category, r.event_type)
    else:
        # The size is inlined (one of three constants), not bound: PostgreSQL cannot tell that two
        # placeholders in SELECT and GROUP BY hold the same value.
        size = literal_column(str(ROLLUP_PERIODS[bucket]), BigInteger)
        start: Any = ((r.bucket_start // size) * size).label("b")
        columns: list[Any] = [start, r.category, r.event_type, *sums]
        grouped: Any = select(*columns).where(*where).group_by(start, r.category, r.event_type)
        stmt = grouped.order_by(start, r.category, r.event_type)
    _TOTALS[key] = stmt
    return _TOTALS[key]


def rollup_totals(conn: Connection, since: int, until: int, categories: list[str],
                  bucket: str | None) -> list[RollupPoint]:
    """Events of the minutes [since, until] per agent and event type, per bucket or for the whole window."""
    pieces = rollup_pieces(since, until, bucket)
    if not pieces:
        return []
    params: dict[str, Any] = {}
    for i, (period, lo, hi) in enumerate(pieces):
        params.update({f"p{i}": period, f"lo{i}": lo, f"hi{i}": hi})
    if categories:
        params["categories"] = categories
    first = pieces[0][1]
    out = []
    for row in conn.execute(_totals_stmt(len(pieces), bucket, bool(categories)), params):
        b, rest = (first, row) if bucket is None else (int(row[0]), row[1:])
        category, kind, n, err, dsum, dcount, lo, hi = rest
        out.append(RollupPoint(b, category, kind, int(n), int(err), float(dsum or 0.0), int(dcount or 0),
                               None if lo is None else float(lo), None if hi is None else float(hi)))
    return out


def event_breakdown(conn: Connection, by: tuple[str, ...], since: int, until: int,
                    categories: list[str]) -> list[EventGroup]:
    """Events and errors per combination of the keys, from the rollups of the window."""
    pieces = rollup_pieces(since, until, None)
    r = rollups.c
    keys = [r[k] for k in by]
    where: list[ColumnElement[bool]] = [or_(*(and_(r.period == p, r.bucket_start >= lo, r.bucket_start < hi)
                                              for p, lo, hi in pieces))] if pieces else [false()]
    if categories:
        where.append(r.category.in_(categories))
    stmt = select(*keys, func.sum(r.count), func.sum(r.error_count)).where(*where).group_by(*keys)
    groups = [EventGroup(tuple(none_if_empty(v) for v in row[:len(by)]), int(row[-2]), int(row[-1]))
              for row in conn.execute(stmt)]
    return ordered_groups([g for g in groups if g.events], lambda g: g.events)


def session_breakdown(conn: Connection, by: tuple[str, ...], since: int, until: int, categories: list[str],
                      percentiles: bool) -> list[SessionGroup]:
    """Sessions started in [since, until] per combination of the keys; nearest-rank percentiles when asked."""
    if set(by) <= {"category"} and not percentiles:
        fast = _agent_sessions(conn, since, until, categories)
        if not by:
            fast = [SessionGroup((), sum(g.sessions for g in fast), sum(g.active for g in fast),
                                 sum(g.ended for g in fast), sum(g.duration_sum for g in fast),
                                 sum(g.duration_count for g in fast))] if fast else []
        return ordered_groups(fast, lambda g: g.sessions)
    s = sessions.c
    keys = [s[k] for k in by]
    where = [s.start_time >= since, s.start_time <= until, *([s.category.in_(categories)] if categories else [])]
    ended_duration = case((s.end_time.is_not(None), s.duration), else_=None)
    rows = conn.execute(select(*keys, func.count(), func.sum(case((s.status == "active", 1), else_=0)),
                               func.count(s.end_time), func.sum(ended_duration), func.count(ended_duration))
                        .where(*where).group_by(*keys)).all()
    groups = {tuple(none_if_empty(v) for v in row[:len(by)]): SessionGroup(
        tuple(none_if_empty(v) for v in row[:len(by)]), int(row[-5]), int(row[-4] or 0), int(row[-3]),
        float(row[-2] or 0.0), int(row[-1])) for row in rows}
    if percentiles:
        ended = [*where, s.end_time.is_not(None), s.duration.is_not(None)]
        for key, attr, p, value in _percentile_rows(conn, keys, ended):
            if key in groups:
                getattr(groups[key], attr)[p] = float(value)
    return ordered_groups(list(groups.values()), lambda g: g.sessions)


# Session counts per agent: (rollup pieces, raw pieces, agent filter) -> the two prebuilt selects.
_SESSIONS: dict[tuple[int, int, bool], tuple[Select[Any], Select[Any]]] = {}


def _sessions_stmts(rolled: int, raw: int, with_categories: bool) -> tuple[Select[Any], Select[Any]]:
    key = (rolled, raw, with_categories)
    cached = _SESSIONS.get(key)
    if cached is not None:
        return cached
    r, s = session_rollups.c, sessions.c
    rolled_where: list[ColumnElement[bool]] = [or_(false(), *(and_(
        r.period == bindparam(f"p{i}"), r.bucket_start >= bindparam(f"lo{i}", type_=BigInteger),
        r.bucket_start < bindparam(f"hi{i}", type_=BigInteger)) for i in range(rolled)))]
    raw_where: list[ColumnElement[bool]] = [or_(false(), *(and_(
        s.start_time >= bindparam(f"rlo{i}", type_=BigInteger), s.start_time < bindparam(f"rhi{i}", type_=BigInteger))
        for i in range(raw)))]
    if with_categories:
        rolled_where.append(r.category.in_(bindparam("categories", expanding=True)))
        raw_where.append(s.category.in_(bindparam("categories", expanding=True)))
    rolled_stmt = select(r.category, func.sum(r.sessions), func.sum(r.active_sessions), func.sum(r.ended_sessions),
                         func.sum(r.duration_sum), func.sum(r.duration_count)).where(*rolled_where) \
        .group_by(r.category)
    ended_duration = case((s.end_time.is_not(None), s.duration), else_=None)
    raw_stmt = select(s.category, func.count(), func.sum(case((s.status == "active", 1), else_=0)),
                      func.count(s.end_time), func.sum(ended_duration), func.count(ended_duration)) \
        .where(*raw_where).group_by(s.category)
    _SESSIONS[key] = (rolled_stmt, raw_stmt)
    return _SESSIONS[key]


def _agent_sessions(conn: Connection, since: int, until: int, categories: list[str]) -> list[SessionGroup]:
    """Sessions per agent started in [since, until]: session_rollups for whole hours and days, the
    sessions table (by ix_sessions_sort_start) only for the partial hours at the edges; two prebuilt
    selects whatever the window."""
    rolled = [(p, lo, hi) for p, lo, hi in read_stats.time_pieces(since, until) if p != "raw"]
    raw = [(lo, hi) for p, lo, hi in read_stats.time_pieces(since, until) if p == "raw"]
    rolled_stmt, raw_stmt = _sessions_stmts(len(rolled), len(raw), bool(categories))
    params: dict[str, Any] = {"categories": categories} if categories else {}
    for i, (period, lo, hi) in enumerate(rolled):
        params.update({f"p{i}": period, f"lo{i}": lo, f"hi{i}": hi})
    for i, (lo, hi) in enumerate(raw):
        params.update({f"rlo{i}": lo, f"rhi{i}": hi})
    groups: dict[str | None, SessionGroup] = {}
    for stmt, used in ((rolled_stmt, rolled), (raw_stmt, raw)):
        if not used:
            continue
        for cat, n, active, ended, dsum, dcount in conn.execute(stmt, params):
            key = none_if_empty(cat)
            g = groups.get(key)
            if g is None:
                g = groups[key] = SessionGroup((key,), 0, 0, 0, 0.0, 0)
            g.sessions += int(n or 0)
            g.active += int(active or 0)
            g.ended += int(ended or 0)
            g.duration_sum += float(dsum or 0.0)
            g.duration_count += int(dcount or 0)
    return [g for g in groups.values() if g.sessions]


def _percentile_rows(conn: Connection, keys: list[Any], where: list[ColumnElement[bool]]
                     ) -> list[tuple[tuple[str | None, ...], str, int, float]]:
    """(group key, attribute, percentile, value): for duration and events per session, the rows at rank
    ceil(p*n/100) of each group, both ranked in one pass over the ended sessions."""
    s = sessions.c
    part = keys or None
    ranked = select(*[k.label(f"k{i}") for i, k in enumerate(keys)], s.duration.label("d"),
                    s.event_count.label("e"),
                    func.row_number().over(partition_by=part, order_by=s.duration).label("rd"),
                    func.row_number().over(partition_by=part, order_by=s.event_count).label("re"),
                    func.count().over(partition_by=part).label("n")).where(*where).subquery()
    c = ranked.c
    ranks = [(p * c.n + 99) // 100 for p in BREAKDOWN_PERCENTILES]  # floor((p*n+99)/100) = ceil(p*n/100)
    stmt = select(*[c[f"k{i}"] for i in range(len(keys))], c.rd, c.re, c.n, c.d, c.e).where(
        or_(*(c.rd == r for r in ranks), *(c.re == r for r in ranks)))
    out: list[tuple[tuple[str | None, ...], str, int, float]] = []
    for row in conn.execute(stmt):
        key = tuple(none_if_empty(v) for v in row[:len(keys)])
        rd, re, n, d, e = (int(row[-5]), int(row[-4]), int(row[-3]), row[-2], row[-1])
        for p in BREAKDOWN_PERCENTILES:
            rank = max(1, (p * n + 99) // 100)
            if rd == rank:
                out.append((key, "duration_percentiles", p, float(d)))
            if re == rank:
                out.append((key, "events_percentiles", p, float(e)))
    return out


class BreakdownReads:
    """SQLStore's ReadBreakdown methods (a mixin: each opens a pooled connection for one read)."""

    @property
    def engine(self) -> Engine:  # provided by SQLStore
        raise NotImplementedError

    def rollup_totals(self, since: int, until: int, categories: Sequence[str] = (),
                      bucket: str | None = None) -> list[RollupPoint]:
        """Return the window's events per agent and event type, per bucket or in all (see ReadBreakdown)."""
        lo, hi = check_window(since, until, bucket)
        cats = check_categories(categories)
        with self.engine.connect() as conn:
            return rollup_totals(conn, lo, hi, cats, bucket)

    def event_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                        categories: Sequence[str] = ()) -> list[EventGroup]:
        """Return events and errors per combination of the keys' values, most first."""
        keys = check_breakdown_keys(by, EVENT_BREAKDOWN_KEYS)
        lo, hi = check_window(since, until)
        cats = check_categories(categories)
        with self.engine.connect() as conn:
            return event_breakdown(conn, keys, lo, hi, cats)

    def session_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                          categories: Sequence[str] = (), percentiles: bool = False) -> list[SessionGroup]:
        """Return sessions per combination of the keys' values, most first, with percentiles when asked."""
        keys = check_breakdown_keys(by, SESSION_BREAKDOWN_KEYS)
        lo, hi = check_window(since, until)
        cats = check_categories(categories)
        with self.engine.connect() as conn:
            return session_breakdown(conn, keys, lo, hi, cats, bool(percentiles))
