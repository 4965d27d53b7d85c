"""The read side of SQLStore: SQLAlchemy Core selects for events, sessions and error groups (stats: read_stats.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    distinct,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.sql.elements import ColumnElement

from ...errors import ValidationError
from ...events import TelemetryEvent
from ...privacy.crypto import decrypt_meta, decrypt_text
from ...query import QueryFilter, SessionFilter
from ..base import (
    ERROR_GROUP_FIELDS,
    ERROR_GROUP_SAMPLES,
    ErrorGroup,
    Session,
)
from ..schema import EVENT_COLUMNS, events, sessions
from .dialect import Dialect


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
