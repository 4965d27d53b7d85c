"""The read side of SQLStore: SQLAlchemy Core selects for queries, sessions and stats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    FromClause,
    Row,
    Select,
    and_,
    bindparam,
    case,
    distinct,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from ...errors import ValidationError
from ...events import TelemetryEvent
from ...privacy.crypto import decrypt_meta, decrypt_text
from ...query import QueryFilter, SessionFilter, StatsFilter
from ..base import (
    ERROR_GROUP_FIELDS,
    ERROR_GROUP_SAMPLES,
    MAX_SERIES_POINTS,
    ErrorGroup,
    GroupStats,
    RollupPoint,
    Session,
    Stats,
)
from ..schema import EVENT_COLUMNS, ROLLUP_PERIODS, events, rollups, session_rollups, session_totals, sessions
from .dialect import Dialect
from .read_extent import time_extent


def _loads(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def row_to_event(row: Row[Any]) -> TelemetryEvent:
    """Build a TelemetryEvent from an events row, JSON decoded."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    meta_json, ctx_json = decrypt_meta(values.pop("metadata")), values.pop("context")
    values["label"] = decrypt_text(values["label"], "label")  # encryption at rest: privacy/crypto.py
    values["stream_data"] = decrypt_text(values["stream_data"], "stream_data")
    event = TelemetryEvent(**values, metadata=_loads(meta_json), context=_loads(ctx_json))
    event.metadata_json, event.context_json = meta_json, ctx_json
    return event


def row_to_session(row: Row[Any]) -> Session:
    """Build a Session from a sessions row."""
    values = dict(row._mapping)
    values["metadata"] = _loads(decrypt_meta(values["metadata"]))
    values["label"] = decrypt_text(values["label"], "label")
    return Session(**values)


def event_conditions(f: QueryFilter, dialect: Dialect, fts: bool) -> list[ColumnElement[bool]]:
    """Translate a QueryFilter into WHERE conditions on events."""
    c = events.c
    conds: list[ColumnElement[bool]] = []
    if f.since is not None:
        conds.append(c.timestamp >= f.since)
    if f.until is not None:
        conds.append(c.timestamp <= f.until)
    if f.session_ids:
        conds.append(c.session_id.in_(f.session_ids))
    if f.event_types:
        conds.append(c.event_type.in_(f.event_types))
    if f.categories:
        conds.append(c.category.in_(f.categories))
    if f.actions:
        conds.append(c.action.in_(f.actions))
    if f.contains:
        conds.append(dialect.contains(f.contains, fts=fts))
    for key, value in f.metadata.items():
        conds.append(dialect.metadata_equals(c.metadata, key, value))
    return conds


def query_events(conn: Connection, f: QueryFilter, dialect: Dialect, fts: bool) -> list[TelemetryEvent]:
    """Run a QueryFilter: matching events ordered by (timestamp, event_id)."""
    cols = [events.c[name] for name in EVENT_COLUMNS]
    order = [events.c.timestamp, events.c.event_id]
    stmt = select(*cols).where(*event_conditions(f, dialect, fts)).order_by(
        *(o.desc() for o in order) if f.order == "desc" else order)
    if f.after is not None:  # a cursor: the page after that event, by a range seek (no OFFSET)
        stmt = stmt.where(keyset_after(f.after, f.order == "desc"))
    if f.limit is not None:
        stmt = stmt.limit(f.limit)
    if f.offset:
        stmt = stmt.offset(f.offset)
    return [row_to_event(row) for row in conn.execute(stmt)]


def iter_events(engine: Engine, f: QueryFilter, dialect: Dialect, fts: bool,
                chunk_size: int) -> Iterator[TelemetryEvent]:
    """Yield a QueryFilter's events chunk_size at a time, in constant memory, whatever their number.

    Keyset pages on (timestamp, event_id): each page starts after the last row of the previous one,
    so no page costs more than the first (OFFSET would rescan every skipped row). Each page is its
    own short read on a pooled connection: nothing is held open while the caller works on a chunk.
    """
    if chunk_size < 1:
        raise ValidationError("chunk_size", "an integer of at least 1", chunk_size)
    cols = [events.c[name] for name in EVENT_COLUMNS]
    ts, eid = events.c.timestamp, events.c.event_id
    desc = f.order == "desc"
    order = [ts.desc(), eid.desc()] if desc else [ts, eid]
    conds = event_conditions(f, dialect, fts)
    left = f.limit
    after: tuple[int, str] | None = f.after  # a cursor: start after it
    skip = f.offset
    while left is None or left > 0:
        size = chunk_size if left is None else min(chunk_size, left)
        stmt = select(*cols).where(*conds).order_by(*order).limit(size)
        if after is not None:
            stmt = stmt.where(keyset_after(after, desc))
        elif skip:
            stmt = stmt.offset(skip)  # once, for the first page only
        with engine.connect() as conn:
            page = [row_to_event(row) for row in conn.execute(stmt)]
        yield from page
        if len(page) < size:
            return
        last = page[-1]
        assert last.event_id is not None
        after = (last.timestamp, last.event_id)
        if left is not None:
            left -= len(page)


def session_conditions(f: SessionFilter) -> list[ColumnElement[bool]]:
    """Translate a SessionFilter into WHERE conditions on sessions."""
    c = sessions.c
    conds: list[ColumnElement[bool]] = []
    if f.statuses:
        conds.append(c.status.in_(f.statuses))
    if f.categories:
        conds.append(c.category.in_(f.categories))
    if f.since is not None:
        conds.append(c.start_time >= f.since)
    if f.until is not None:
        conds.append(c.start_time <= f.until)
    if f.with_errors is not None:
        conds.append(c.error_count > 0 if f.with_errors else c.error_count == 0)
    return conds


def session_order(f: SessionFilter, dialect: Dialect) -> list[Any]:
    """ORDER BY of a sessions listing: the sort key, then start time, then id, all in the filter's direction.

    Each sort key has an index in exactly this order (migration 0013, ix_sessions_sort_*),
    so a page is an index walk whatever the number of sessions. A session still running has no
    duration: it sorts below every duration (last when longest first).
    """
    c, desc = sessions.c, f.order == "desc"
    ties = [c.start_time.desc(), c.id.desc()] if desc else [c.start_time, c.id]
    if f.sort_by == "start_time":
        return ties
    key = c[f.sort_by]
    return [dialect.nulls_low(key, desc) if key.nullable else (key.desc() if desc else key), *ties]


def query_sessions(conn: Connection, f: SessionFilter, dialect: Dialect) -> list[Session]:
    """Run a SessionFilter in its sort order (start time by default; see session_order).

    With a cursor (f.after), the rows after it come from one or two range seeks of the sort index
    (session_keyset), each in the listing's order, the second only if the first falls short.
    """
    base: Select[Any] = select(sessions).where(*session_conditions(f)).order_by(*session_order(f, dialect))
    found: list[Session] = []
    for segment in session_keyset(f) if f.after is not None else [[]]:
        left = None if f.limit is None else f.limit - len(found)
        if left is not None and left <= 0:
            break
        stmt = base.where(*segment)
        if left is not None:
            stmt = stmt.limit(left)
        if f.offset:
            stmt = stmt.offset(f.offset)
        found += [row_to_session(row) for row in conn.execute(stmt)]
    return found


def session_keyset(f: SessionFilter) -> list[list[ColumnElement[bool]]]:
    """The sessions after the cursor position f.after, as conditions of consecutive stretches of the order.

    Row-value comparisons `(key, start_time, id) < (k, s, i)` are range seeks of the sort index on both
    databases. A running session has no duration and sorts below every one, which a comparison with
    NULL cannot say: when sorted by duration, the durations and the running sessions are two stretches
    of the order (NULLs last when descending, first when ascending), each one seek, read in turn.
    """
    assert f.after is not None
    c, desc = sessions.c, f.order == "desc"

    def beyond(columns: list[Any], values: tuple[Any, ...]) -> ColumnElement[bool]:
        left, right = tuple_(*columns), tuple_(*(literal(v) for v in values))
        return left < right if desc else left > right

    if f.sort_by == "start_time":
        return [[beyond([c.start_time, c.id], f.after)]]
    key = c[f.sort_by]
    k, rest = f.after[0], f.after[1:]
    if not key.nullable:
        return [[beyond([key, c.start_time, c.id], f.after)]]
    if k is None:  # inside the running sessions: the rest of them, then (ascending) every duration
        nulls = [key.is_(None), beyond([c.start_time, c.id], rest)]
        return [nulls] if desc else [nulls, [key.is_not(None)]]
    durations = [beyond([key, c.start_time, c.id], f.after)]  # NULL compares as unknown: excluded
    return [durations, [key.is_(None)]] if desc else [durations]


def longest_sessions(conn: Connection, f: SessionFilter, limit: int) -> list[Session]:
    """Finished sessions (a duration) matching the filter, longest first (ties: newest start, then id)."""
    c = sessions.c
    stmt = select(sessions).where(*session_conditions(f), c.duration.is_not(None)).order_by(
        c.duration.desc(), c.start_time.desc(), c.id).limit(limit)
    return [row_to_session(row) for row in conn.execute(stmt)]


def error_groups(conn: Connection, f: QueryFilter, dialect: Dialect, fts: bool, by: str,
                 limit: int | None) -> list[ErrorGroup]:
    """Error events matching the filter, grouped by one field: count, sessions, first/last seen, samples.

    Two grouped scans of the matching error events (index ix_events_type_ts): the groups, then the
    first few sessions of each by a window function. Ordered here (count desc, key) so every
    backend agrees whatever its collation.
    """
    if by not in ERROR_GROUP_FIELDS:
        raise ValidationError("by", "one of " + ", ".join(ERROR_GROUP_FIELDS), by)
    e = events.c
    key = e[by]
    where = [*event_conditions(replace(f, event_types=["error"], limit=None, offset=0), dialect, fts)]
    groups = {k: ErrorGroup(k, int(n), int(s), int(lo), int(hi)) for k, n, s, lo, hi in conn.execute(
        select(key, func.count(), func.count(distinct(e.session_id)), func.min(e.timestamp), func.max(e.timestamp))
        .where(*where).group_by(key))}
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.key or ""))
    if limit is not None:
        ordered = ordered[:limit]
    if by != "session_id" and ordered:
        per = select(key.label("k"), e.session_id.label("sid"), func.min(e.timestamp).label("seen")).where(
            *where, e.session_id.is_not(None)).group_by(key, e.session_id).subquery()
        ranked = select(per.c.k, per.c.sid, func.row_number().over(
            partition_by=per.c.k, order_by=(per.c.seen, per.c.sid)).label("n")).subquery()
        for k, sid in conn.execute(select(ranked.c.k, ranked.c.sid).where(ranked.c.n <= ERROR_GROUP_SAMPLES)
                                   .order_by(ranked.c.k, ranked.c.n)):
            if k in groups:
                groups[k].sample_session_ids.append(sid)
    elif by == "session_id":
        for g in ordered:
            g.sample_session_ids = [g.key] if g.key is not None else []
    return ordered


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
def keyset_after(after: tuple[int, str], desc: bool) -> ColumnElement[bool]:
    """Rows after (timestamp, event_id) in the page order, as a range the timestamp index can seek.

    `ts > t OR (ts = t AND id > i)` says the same, but SQLite then scans ix_events_timestamp from its
    start on every page (the OR is no range): page k cost O(k), an export of 1M events 15 s of CPU
    instead of 8. `ts >= t AND (ts > t OR id > i)` is a range search on both backends.
    """
    ts, eid = events.c.timestamp, events.c.event_id
    t, i = after
    if desc:
        return and_(ts <= t, or_(ts < t, eid < i))
    return and_(ts >= t, or_(ts > t, eid > i))
