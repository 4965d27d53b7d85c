"""The read side of SQLStore: SQLAlchemy Core selects for queries, sessions and stats."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, case, distinct, func, select, true
from sqlalchemy.sql.elements import ColumnElement

from ..events import TelemetryEvent
from ..query import QueryFilter, SessionFilter, StatsFilter
from . import dialects
from .base import GroupStats, Session, Stats
from .schema import EVENT_COLUMNS, events, rollups, sessions


def _loads(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


def row_to_event(row: Row[Any]) -> TelemetryEvent:
    """Build a TelemetryEvent from an events row, JSON decoded."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    meta_json, ctx_json = values.pop("metadata"), values.pop("context")
    event = TelemetryEvent(**values, metadata=_loads(meta_json), context=_loads(ctx_json))
    event.metadata_json, event.context_json = meta_json, ctx_json
    return event


def row_to_session(row: Row[Any]) -> Session:
    """Build a Session from a sessions row."""
    values = dict(row._mapping)
    values["metadata"] = _loads(values["metadata"])
    return Session(**values)


def event_conditions(f: QueryFilter, dialect: str, fts: bool) -> list[ColumnElement[bool]]:
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
        conds.append(dialects.contains(dialect, f.contains, fts=fts))
    for key, value in f.metadata.items():
        conds.append(dialects.metadata_equals(dialect, c.metadata, key, value))
    return conds


def query_events(conn: Connection, f: QueryFilter, dialect: str, fts: bool) -> list[TelemetryEvent]:
    """Run a QueryFilter: matching events ordered by (timestamp, event_id)."""
    cols = [events.c[name] for name in EVENT_COLUMNS]
    order = [events.c.timestamp, events.c.event_id]
    stmt = select(*cols).where(*event_conditions(f, dialect, fts)).order_by(
        *(o.desc() for o in order) if f.order == "desc" else order)
    if f.limit is not None:
        stmt = stmt.limit(f.limit)
    if f.offset:
        stmt = stmt.offset(f.offset)
    return [row_to_event(row) for row in conn.execute(stmt)]


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


def query_sessions(conn: Connection, f: SessionFilter) -> list[Session]:
    """Run a SessionFilter ordered by (start_time, id)."""
    order = [sessions.c.start_time, sessions.c.id]
    stmt: Select[Any] = select(sessions).where(*session_conditions(f)).order_by(
        *(o.desc() for o in order) if f.order == "desc" else order)
    if f.limit is not None:
        stmt = stmt.limit(f.limit)
    if f.offset:
        stmt = stmt.offset(f.offset)
    return [row_to_session(row) for row in conn.execute(stmt)]


def stats(conn: Connection, f: StatsFilter, size_bytes: int | None) -> Stats:
    """Compute Stats: from hour rollups when there is no time filter, else from indexed events."""
    e, r, s = events.c, rollups.c, sessions.c
    ev_where = [*( [e.timestamp >= f.since] if f.since is not None else []),
                *([e.timestamp <= f.until] if f.until is not None else []),
                *([e.category.in_(f.categories)] if f.categories else [])]
    from_rollups = f.since is None and f.until is None
    if from_rollups:
        # Hour rollups hold every event once: totals without touching the raw events.
        r_where = [r.period == "hour", *([r.category.in_(f.categories)] if f.categories else [])]
        agent_rows = conn.execute(select(r.category, func.sum(r.count), func.sum(r.error_count))
                                  .where(*r_where).group_by(r.category)).all()
    else:
        agent_rows = conn.execute(select(e.category, func.count(), func.sum(
            case((e.event_type == "error", 1), else_=0))).where(*ev_where).group_by(e.category)).all()
    agents = {str(cat or ""): int(n or 0) for cat, n, _ in agent_rows}
    error_events = sum(int(err or 0) for _, _, err in agent_rows)
    # min/max are each one probe of ix_events_timestamp (or ix_events_category_ts for one category).
    first = conn.execute(select(func.min(e.timestamp)).where(*ev_where)).scalar()
    last = conn.execute(select(func.max(e.timestamp)).where(*ev_where)).scalar()
    s_filter = SessionFilter(categories=f.categories, since=f.since, until=f.until)
    total_s, active_s, avg_d = conn.execute(select(
        func.count(), func.sum(case((s.status == "active", 1), else_=0)),
        func.avg(case((s.end_time.is_not(None), s.duration), else_=None)),
    ).where(*session_conditions(s_filter))).one()
    groups: list[GroupStats] = []
    if f.group_by:
        groups = _groups(conn, f.group_by, from_rollups, f, ev_where, s_filter)
    return Stats(
        total_events=sum(agents.values()), total_sessions=int(total_s or 0),
        active_sessions=int(active_s or 0),
        error_events=error_events, agents=agents, first_timestamp=first, last_timestamp=last,
        database_size_bytes=size_bytes, avg_session_duration_ms=float(avg_d) if avg_d is not None else None,
        group_by=f.group_by, groups=groups)


def _groups(conn: Connection, by: str, from_rollups: bool, f: StatsFilter,
            ev_where: list[ColumnElement[bool]], s_filter: SessionFilter) -> list[GroupStats]:
    """Events and errors per key (rollups or events); sessions per key (see GroupStats)."""
    e, r = events.c, rollups.c
    counts: dict[str | None, tuple[int, int]] = {}
    if from_rollups:
        r_where = [r.period == "hour", *([r.category.in_(f.categories)] if f.categories else [])]
        col = r[by]
        rows = conn.execute(select(col, func.sum(r.count), func.sum(r.error_count)).where(*r_where)
                            .group_by(col)).all()
        # Rollups key a missing action as '': report it as None, as events do.
        counts = {(k or None): (int(n), int(err)) for k, n, err in rows}
    else:
        col = e[by]
        rows = conn.execute(select(col, func.count(), func.sum(case((e.event_type == "error", 1), else_=0)))
                            .where(*ev_where).group_by(col)).all()
        counts = {k: (int(n), int(err or 0)) for k, n, err in rows}
    if by == "category":
        # Sessions per agent come from the sessions table: no scan of events.
        srows = conn.execute(select(sessions.c.category, func.count()).where(
            *session_conditions(s_filter)).group_by(sessions.c.category)).all()
    else:
        # Sessions per action or event type need the events themselves (one grouped scan).
        srows = conn.execute(select(e[by], func.count(distinct(e.session_id))).where(
            and_(true(), *ev_where)).group_by(e[by])).all()
    per_key = {k: int(n) for k, n in srows}
    groups = [GroupStats(k, n, per_key.get(k, 0), err) for k, (n, err) in counts.items()]
    groups.sort(key=lambda g: (-g.events, g.key or ""))
    return groups
