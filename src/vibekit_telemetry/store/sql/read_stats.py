"""Stats reads of SQLStore: totals, counts over time windows (rollups + raw edges), rollup series."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    FromClause,
    Select,
    and_,
    bindparam,
    case,
    distinct,
    func,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from ...query import StatsFilter
from ..base import (
    MAX_SERIES_POINTS,
    GroupStats,
    RollupPoint,
    Stats,
)
from ..schema import ROLLUP_PERIODS, events, rollups, session_rollups, session_totals, sessions
from .read_extent import time_extent

_HOUR, _DAY = ROLLUP_PERIODS["hour"], ROLLUP_PERIODS["day"]
# A source of event counts over a half-open time range [lo, hi) (None: unbounded).
Piece = tuple[str, int | None, int | None]


def time_pieces(since: int | None, until: int | None) -> list[Piece]:
    """Cover [since, until] with day rollups, hour rollups at the edges and raw events for partial hours.

    Each piece is (source, lo, hi): source "day" / "hour" (rollup buckets starting in [lo, hi)) or
    "raw" (events with timestamp in [lo, hi)). Whole days and hours lie inside the range, so the
    pieces add up exactly; at most two raw pieces, each under an hour.
    """
    lo, hi = since, None if until is None else until + 1

    def up(x: int, size: int) -> int:
        return -(-x // size) * size

    def down(x: int, size: int) -> int:
        return x // size * size

    d0 = None if lo is None else up(lo, _DAY)
    d1 = None if hi is None else down(hi, _DAY)
    pieces: list[Piece] = []
    if d0 is None or d1 is None or d0 < d1:
        pieces.append(("day", d0, d1))
        if lo is not None and d0 is not None:
            h0 = up(lo, _HOUR)
            pieces += [("raw", lo, h0), ("hour", h0, d0)]
        if hi is not None and d1 is not None:
            h1 = down(hi, _HOUR)
            pieces += [("hour", d1, h1), ("raw", h1, hi)]
    else:
        assert lo is not None and hi is not None
        h0, h1 = up(lo, _HOUR), down(hi, _HOUR)
        if h0 < h1:
            pieces += [("raw", lo, h0), ("hour", h0, h1), ("raw", h1, hi)]
        else:
            pieces.append(("raw", lo, hi))
    return [p for p in pieces if p[1] is None or p[2] is None or p[1] < p[2]]


# The shape of a list of time pieces: (source, has lo, has hi) each; statements are cached by it.
Shape = tuple[tuple[str, bool, bool], ...]


def _shape(pieces: list[Piece]) -> Shape:
    return tuple((source, lo is not None, hi is not None) for source, lo, hi in pieces)


def _bounded(ts: Any, category: Any, i: int, lo: bool, hi: bool, cats: bool) -> list[ColumnElement[bool]]:
    """Piece i's ts in [:lo<i>, :hi<i>) and category IN :cats<i>, as parameters bound per call (_params)."""
    return [*([ts >= bindparam(f"lo{i}")] if lo else []), *([ts < bindparam(f"hi{i}")] if hi else []),
            *([category.in_(bindparam(f"cats{i}", expanding=True))] if cats else [])]


def _params(pieces: list[Piece], f: StatsFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, (_, lo, hi) in enumerate(pieces):
        params.update({**({f"lo{i}": lo} if lo is not None else {}), **({f"hi{i}": hi} if hi is not None else {}),
                       **({f"cats{i}": list(f.categories)} if f.categories else {})})
    return params


def _one(parts: list[Select[Any]]) -> Any:
    # Every piece in one statement: a round trip each cost more than the pieces' reads (issue 16).
    return parts[0] if len(parts) == 1 else union_all(*parts)


@cache
def _event_counts_stmt(by: str, shape: Shape, cats: bool) -> Any:
    """event_counts' pieces, built once per shape (stats are polled; see _rollup_series_stmt)."""
    e, r = events.c, rollups.c
    errors = func.sum(case((e.event_type == "error", 1), else_=0))
    return _one([
        select(e[by], func.count(), errors).where(*_bounded(e.timestamp, e.category, i, lo, hi, cats))
        .group_by(e[by]) if source == "raw" else
        # Rollups key a missing action as '': NULL, as events have it.
        select(func.nullif(r[by], literal_column("''")), func.sum(r.count), func.sum(r.error_count))
        .where(r.period == source, *_bounded(r.bucket_start, r.category, i, lo, hi, cats)).group_by(r[by])
        for i, (source, lo, hi) in enumerate(shape)])


def event_counts(conn: Connection, by: str, f: StatsFilter) -> dict[str | None, tuple[int, int]]:
    """Events and error events per value of `by` (category, action or event_type) in the filter's range.

    From rollups for whole days and hours, from raw events (by index) only for the partial hours at
    the edges, in one statement. Rollups key a missing action as '': it is reported as None, as events do.
    """
    pieces = time_pieces(f.since, f.until)
    counts: dict[str | None, list[int]] = {}
    if pieces:
        for k, n, err in conn.execute(_event_counts_stmt(by, _shape(pieces), bool(f.categories)),
                                      _params(pieces, f)):
            acc = counts.setdefault(k, [0, 0])
            acc[0] += int(n or 0)
            acc[1] += int(err or 0)
    return {k: (n, err) for k, (n, err) in counts.items() if n > 0}


@cache
def _session_counts_stmt(shape: Shape, cats: bool) -> Any:
    """session_counts' pieces, built once per shape."""
    s, r = sessions.c, session_rollups.c
    # Grouped by an expression so the planner keeps the start_time range scan instead of walking
    # ix_sessions_category.
    ended_duration = case((s.end_time.is_not(None), s.duration), else_=None)
    key = func.coalesce(s.category, literal_column("''"))  # inline: same text in SELECT and GROUP BY
    raw = [key, func.count(), func.sum(case((s.status == "active", 1), else_=0)), func.sum(ended_duration),
           func.count(ended_duration)]
    rolled = [r.category, func.sum(r.sessions), func.sum(r.active_sessions), func.sum(r.duration_sum),
              func.sum(r.duration_count)]
    return _one([
        select(*raw).where(*_bounded(s.start_time, s.category, i, lo, hi, cats)).group_by(key)
        if source == "raw" else
        select(*rolled).where(r.period == source, *_bounded(r.bucket_start, r.category, i, lo, hi, cats))
        .group_by(r.category)
        for i, (source, lo, hi) in enumerate(shape)])


def session_counts(conn: Connection, f: StatsFilter) -> dict[str | None, tuple[int, int, float, int]]:
    """Per category: sessions started in the filter's range, active ones, duration sum and count (ended).

    From session_rollups (by start time) for whole days and hours, from the sessions table (by
    ix_sessions_sort_start) only for the partial hours at the edges, in one statement.
    """
    pieces = time_pieces(f.since, f.until)
    counts: dict[str | None, list[Any]] = {}
    if pieces:
        for cat, n, active, dsum, dcount in conn.execute(_session_counts_stmt(_shape(pieces), bool(f.categories)),
                                                         _params(pieces, f)):
            acc = counts.setdefault(cat or None, [0, 0, 0.0, 0])
            acc[0] += int(n or 0)
            acc[1] += int(active or 0)
            acc[2] += float(dsum or 0)
            acc[3] += int(dcount or 0)
    return {k: (n, a, d, c) for k, (n, a, d, c) in counts.items() if n > 0}


@cache
def _totals_statement(totals: FromClause, with_categories: bool) -> Select[Any]:
    """Per-category totals, of `categories` if asked: built once per source (see _rollup_series_stmt)."""
    t = totals.c
    return select(t.category, t.events, t.error_events, t.sessions, t.active_sessions, t.duration_sum,
                  t.duration_count).where(*([t.category.in_(bindparam("categories", expanding=True))]
                                            if with_categories else []))


def stats(conn: Connection, f: StatsFilter, size_bytes: int | None, totals: FromClause = session_totals) -> Stats:
    """Compute Stats from maintained aggregates: session_totals, or (session_)rollups for a time range.

    totals: where per-category totals are read (Dialect.totals_source: with PostgreSQL's unfolded deltas).
    """
    e = events.c
    ev_where = [*([e.timestamp >= f.since] if f.since is not None else []),
                *([e.timestamp <= f.until] if f.until is not None else []),
                *([e.category.in_(f.categories)] if f.categories else [])]
    unfiltered = f.since is None and f.until is None
    by_category: dict[str | None, tuple[int, int]]
    if unfiltered:
        # One row per agent, kept by every batch and by clean().
        rows = conn.execute(_totals_statement(totals, bool(f.categories)),
                            {"categories": list(f.categories)} if f.categories else {}).all()
        by_category = {(cat or None): (int(n), int(err)) for cat, n, err, *_ in rows if n > 0}
        sessions_per = {(cat or None): int(n_s) for cat, _, _, n_s, *_ in rows if n_s > 0}
        total_s = sum(int(row[3]) for row in rows)
        active_s = sum(int(row[4]) for row in rows)
        dsum, dcount = sum(float(row[5]) for row in rows), sum(int(row[6]) for row in rows)
        avg_d = dsum / dcount if dcount else None
    else:
        by_category = event_counts(conn, "category", f)
        per = session_counts(conn, f)
        sessions_per = {cat: n for cat, (n, *_) in per.items()}
        total_s = sum(n for n, *_ in per.values())
        active_s = sum(a for _, a, _, _ in per.values())
        dsum, dcount = sum(d for *_, d, _ in per.values()), sum(c for *_, c in per.values())
        avg_d = dsum / dcount if dcount else None
    agents = {str(cat or ""): n for cat, (n, _) in by_category.items()}
    error_events = sum(err for _, err in by_category.values())
    first, last = time_extent(conn, f, ev_where)  # through the minute rollups: see read_extent.py
    groups: list[GroupStats] = []
    if f.group_by:
        counts = by_category if f.group_by == "category" else event_counts(conn, f.group_by, f)
        groups = _groups(conn, f.group_by, counts, sessions_per, ev_where)
    return Stats(
        total_events=sum(agents.values()), total_sessions=int(total_s or 0),
        active_sessions=int(active_s or 0),
        error_events=error_events, agents=agents, first_timestamp=first, last_timestamp=last,
        database_size_bytes=size_bytes, avg_session_duration_ms=float(avg_d) if avg_d is not None else None,
        group_by=f.group_by, groups=groups)


def _groups(conn: Connection, by: str, counts: dict[str | None, tuple[int, int]],
            sessions_per_category: dict[str | None, int], ev_where: list[ColumnElement[bool]]) -> list[GroupStats]:
    """Events and errors per key (from event_counts); sessions per key (see GroupStats)."""
    e = events.c
    if by == "category":
        per_key = sessions_per_category  # from session_totals or session_rollups: no event scan
    else:
        # Sessions per action or event type need the events themselves (one grouped scan).
        per_key = {k: int(n) for k, n in conn.execute(select(e[by], func.count(distinct(e.session_id))).where(
            and_(true(), *ev_where)).group_by(e[by]))}
    groups = [GroupStats(k, n, per_key.get(k, 0), err) for k, (n, err) in counts.items()]
    groups.sort(key=lambda g: (-g.events, g.key or ""))
    return groups


def _rollup_series_stmt(with_categories: bool) -> Select[Any]:
    """Built once: the dashboard asks every few seconds, and building a select costs more than running it."""
    r = rollups.c
    cond = [r.period == bindparam("period"), r.bucket_start >= bindparam("since"),
            r.bucket_start <= bindparam("until")]
    if with_categories:
        cond.append(r.category.in_(bindparam("categories", expanding=True)))
    return (select(r.bucket_start, r.category, r.event_type, func.sum(r.count), func.sum(r.error_count),
                   func.sum(r.duration_sum), func.sum(r.duration_count), func.min(r.duration_min),
                   func.max(r.duration_max))
            .where(and_(*cond)).group_by(r.bucket_start, r.category, r.event_type)
            .order_by(r.bucket_start, r.category, r.event_type).limit(MAX_SERIES_POINTS))


_ROLLUP_SERIES = {False: _rollup_series_stmt(False), True: _rollup_series_stmt(True)}


def rollup_series(conn: Connection, period: str, since: int, until: int, categories: list[str]) -> list[RollupPoint]:
    """Rollup buckets of one period in [since, until] (actions summed), by the (period, bucket_start) key."""
    params: dict[str, Any] = {"period": period, "since": since, "until": until}
    if categories:
        params["categories"] = categories
    rows = conn.execute(_ROLLUP_SERIES[bool(categories)], params)
    return [RollupPoint(int(b), c, t, int(n), int(e), float(ds or 0.0), int(dc),
                        None if lo is None else float(lo), None if hi is None else float(hi))
            for b, c, t, n, e, ds, dc, lo, hi in rows]


# -- raw rows: the export fast path (no TelemetryEvent per row) -------------------------------------

# Columns stored encrypted when encryption at rest is on, and the read mapping of each.
