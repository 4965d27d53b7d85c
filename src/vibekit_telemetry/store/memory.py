"""MemoryStore: the QueryableStore semantics in pure Python, for tests and `{"type": "memory"}`."""

from __future__ import annotations

import bisect
import copy
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent, now_ms
from ..query import QueryFilter, SessionFilter, StatsFilter
from . import audit
from ._batch import (
    ROLLUP_PERIODS,
    KnownSession,
    RollupDelta,
    RollupKey,
    add_event_rollups,
    plan_batch,
    resolve_older_than,
    writer_run_row,
)
from .base import (
    ERROR_GROUP_FIELDS,
    ERROR_GROUP_SAMPLES,
    BatchResult,
    ErrorGroup,
    GroupStats,
    RollupPoint,
    Session,
    Stats,
    check_row_columns,
    check_series_args,
)
from .changelog import MemoryChangeLog
from .memory_breakdown import MemoryBreakdown
from .memory_filters import beyond, in_range, matches, position_key, session_matches, session_sort_key


class MemoryStore(MemoryBreakdown):
    """Events and sessions in dicts behind one lock; nothing survives the process."""

    name = "memory"
    supports_query = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, TelemetryEvent] = {}
        # (timestamp, event_id) of every event, sorted: iter_events pages through it by key.
        self._order: list[tuple[int, str]] = []
        self._sessions: dict[str, Session] = {}
        self._audit: list[dict[str, Any]] = []
        self._runs: dict[str, dict[str, Any]] = {}
        self._closed = False
        self._changes = MemoryChangeLog()

    def initialize(self) -> None:
        """Nothing to open."""

    def store(self, event: TelemetryEvent) -> BatchResult:
        """Store one event."""
        return self.store_batch([event])

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult:
        """Store a batch with the same session rules as the SQL store, all or nothing."""
        with self._lock:
            ids = {s for e in events if (s := e.session_id) is not None}
            known = {s: KnownSession(x.category, x.start_time, x.status, x.end_time, x.duration)
                     for s in ids if (x := self._sessions.get(s)) is not None}
            plan = plan_batch(events, known, self._events)
            for event in plan.events:
                assert event.event_id is not None
                # A private copy: callers may reuse or mutate their event objects.
                self._events[event.event_id] = replace(event, metadata=copy.deepcopy(event.metadata),
                                                       context=copy.deepcopy(event.context))
                bisect.insort(self._order, (event.timestamp, event.event_id))
            self._changes.append([e.event_id for e in plan.events if e.event_id is not None])
            for d in plan.sessions.values():
                session = self._sessions.get(d.id)
                if session is None:
                    session = self._sessions[d.id] = Session(
                        id=d.id, category=d.category, action=d.action, status="active",
                        start_time=d.start_time)
                if d.started:
                    session.start_time = min(session.start_time, d.start_time)
                    session.category, session.action, session.label = d.category, d.action, d.label
                    session.sandbox_id, session.repo_url = d.sandbox_id, d.repo_url
                    session.metadata = json.loads(d.metadata_json) if d.metadata_json else None
                session.event_count += d.event_count
                session.stream_count += d.stream_count
                session.error_count += d.error_count
                if d.last_event_time is not None:
                    session.last_event_time = max(session.last_event_time or 0, d.last_event_time)
                if d.status is not None:
                    session.status, session.end_time, session.duration = d.status, d.end_time, d.duration
            return plan.result

    def query(self, filter_: QueryFilter) -> list[TelemetryEvent]:
        """Return matching events ordered by (timestamp, event_id)."""
        f = filter_
        needle = f.contains.lower() if f.contains else None
        with self._lock:
            found = [copy.deepcopy(e) for e in self._events.values() if matches(e, f, needle)]
        found.sort(key=lambda e: (e.timestamp, e.event_id or ""), reverse=f.order == "desc")
        if (at := f.after) is not None:  # a cursor: the events after it in the order
            found = [e for e in found if beyond((e.timestamp, e.event_id or ""), at, f.order)]
        end = None if f.limit is None else f.offset + f.limit
        return found[f.offset:end]

    def iter_events(self, filter_: QueryFilter, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        """Yield matching events in the filter's order, copying chunk_size at a time (keyset pages)."""
        if chunk_size < 1:
            raise ValidationError("chunk_size", "an integer of at least 1", chunk_size)
        f = filter_
        needle = f.contains.lower() if f.contains else None
        desc = f.order == "desc"
        skip, left = f.offset, f.limit
        after: tuple[int, str] | None = f.after  # a cursor: start after it
        while left is None or left > 0:
            size = chunk_size if left is None else min(chunk_size, left)
            page: list[TelemetryEvent] = []
            with self._lock:  # held per page only: writers go on between pages
                order = self._order
                if desc:
                    pos = len(order) - 1 if after is None else bisect.bisect_left(order, after) - 1
                else:
                    pos = 0 if after is None else bisect.bisect_right(order, after)
                while 0 <= pos < len(order) and len(page) < size:
                    after = order[pos]
                    pos += -1 if desc else 1
                    event = self._events[after[1]]
                    if not matches(event, f, needle):
                        continue
                    if skip:
                        skip -= 1
                        continue
                    page.append(copy.deepcopy(event))
            yield from page
            if len(page) < size:
                return
            if left is not None:
                left -= len(page)

    def iter_rows(self, filter_: QueryFilter, columns: Sequence[str] | None = None,
                  chunk_size: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        """Yield matching events as pages of tuples in `columns` order, metadata and context as JSON text."""
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValidationError("chunk_size", "an integer of at least 1", chunk_size)
        names = check_row_columns(columns)
        page: list[tuple[Any, ...]] = []
        for event in self.iter_events(filter_, chunk_size):
            page.append(tuple(_cell(event, name) for name in names))
            if len(page) == chunk_size:
                yield page
                page = []
        if page:
            yield page

    def error_groups(self, filter_: QueryFilter, by: str = "label", limit: int | None = None) -> list[ErrorGroup]:
        """Return the error events matching the filter grouped by `by`, most frequent first."""
        if by not in ERROR_GROUP_FIELDS:
            raise ValidationError("by", "one of " + ", ".join(ERROR_GROUP_FIELDS), by)
        f = replace(filter_, event_types=["error"], limit=None, offset=0)
        needle = f.contains.lower() if f.contains else None
        groups: dict[str | None, ErrorGroup] = {}
        first_seen: dict[str | None, dict[str, int]] = {}
        with self._lock:
            for e in self._events.values():
                if not matches(e, f, needle):
                    continue
                key = getattr(e, by)
                g = groups.get(key)
                if g is None:
                    g = groups[key] = ErrorGroup(key, 0, 0, e.timestamp, e.timestamp)
                g.count += 1
                g.first_seen, g.last_seen = min(g.first_seen, e.timestamp), max(g.last_seen, e.timestamp)
                if e.session_id is not None:
                    seen = first_seen.setdefault(key, {})
                    seen[e.session_id] = min(seen.get(e.session_id, e.timestamp), e.timestamp)
        for key, g in groups.items():
            seen = first_seen.get(key, {})
            g.sessions = len(seen)
            g.sample_session_ids = [sid for _, sid in sorted((t, sid) for sid, t in seen.items())][
                :ERROR_GROUP_SAMPLES]
        ordered = sorted(groups.values(), key=lambda g: (-g.count, g.key or ""))
        return ordered if limit is None else ordered[:limit]

    def longest_sessions(self, filter_: SessionFilter, limit: int = 10) -> list[Session]:
        """Return the finished sessions matching the filter, longest duration first."""
        with self._lock:
            found = [copy.deepcopy(s) for s in self._sessions.values()
                     if s.duration is not None and session_matches(s, filter_)]
        # Longest first; ties: newest start, then id (as the SQL stores order them).
        found.sort(key=lambda s: s.id)
        found.sort(key=lambda s: (s.duration, s.start_time), reverse=True)
        return found[:limit]

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session, with its events in time order when asked."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            out = copy.deepcopy(session)
        if with_events:
            out.events = self.query(QueryFilter(session_ids=[session_id]))
        return out

    def get_sessions(self, filter_: SessionFilter) -> list[Session]:
        """Return the sessions matching the filter, newest first by default."""
        f = filter_
        with self._lock:
            found = [copy.deepcopy(s) for s in self._sessions.values() if session_matches(s, f)]
        key = session_sort_key(f)
        found.sort(key=key, reverse=f.order == "desc")
        if f.after is not None:  # a cursor: the sessions after its position in the order
            found = [s for s in found if beyond(key(s), position_key(f), f.order)]
        end = None if f.limit is None else f.offset + f.limit
        return found[f.offset:end]

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Return which of these event ids are stored."""
        with self._lock:
            return {e for e in event_ids if e in self._events}

    def existing_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Return which of these session ids are stored."""
        with self._lock:
            return {s for s in session_ids if s in self._sessions}

    def get_stats(self, filter_: StatsFilter) -> Stats:
        """Return totals and the requested breakdown over the filtered events."""
        f = filter_
        with self._lock:
            events = [e for e in self._events.values() if in_range(e.timestamp, f.since, f.until)
                      and (not f.categories or e.category in f.categories)]
            sessions = [s for s in self._sessions.values() if session_matches(
                s, SessionFilter(categories=f.categories, since=f.since, until=f.until))]
        agents: dict[str, int] = {}
        for e in events:
            agents[e.category or ""] = agents.get(e.category or "", 0) + 1
        durations = [s.duration for s in sessions if s.end_time is not None and s.duration is not None]
        stamps = [e.timestamp for e in events]
        groups: list[GroupStats] = []
        if f.group_by:
            by: dict[str | None, list[TelemetryEvent]] = {}
            for e in events:
                by.setdefault(getattr(e, f.group_by), []).append(e)
            # As the SQL store: sessions per agent from the sessions, per action / type from the events.
            per_category: dict[str | None, int] = {}
            for s in sessions:
                per_category[s.category] = per_category.get(s.category, 0) + 1
            groups = [GroupStats(key, len(items), per_category.get(key, 0) if f.group_by == "category"
                                 else len({e.session_id for e in items if e.session_id}),
                                 sum(e.event_type == "error" for e in items)) for key, items in by.items()]
            groups.sort(key=lambda g: (-g.events, g.key or ""))
        return Stats(
            total_events=len(events), total_sessions=len(sessions),
            active_sessions=sum(s.status == "active" for s in sessions),
            error_events=sum(e.event_type == "error" for e in events), agents=agents,
            first_timestamp=min(stamps) if stamps else None, last_timestamp=max(stamps) if stamps else None,
            database_size_bytes=None,
            avg_session_duration_ms=sum(durations) / len(durations) if durations else None,
            group_by=f.group_by, groups=groups)

    def rollup_series(self, period: str, since: int, until: int,
                      categories: Sequence[str] = ()) -> list[RollupPoint]:
        """Return the `period` buckets starting in [since, until] per category and event type.

        Built with the writer's own rollup delta function over the stored events, so the buckets are
        those the SQL store keeps (this store is for tests; it has no maintained rollups).
        """
        check_series_args(period, since, until)
        size = ROLLUP_PERIODS[period]
        deltas: dict[RollupKey, RollupDelta] = {}
        with self._lock:
            lo = bisect.bisect_left(self._order, (since // size * size, ""))
            for ts, event_id in self._order[lo:]:
                if ts // size * size > until:
                    break
                e = self._events[event_id]
                if categories and e.category not in categories:
                    continue
                add_event_rollups(deltas, None, ts, e.category or "", e.action or "", e.event_type,
                                  errors=1 if e.event_type == "error" else 0, duration_sum=e.duration or 0.0,
                                  duration_count=0 if e.duration is None else 1, duration=e.duration)
        merged: dict[tuple[int, str, str], RollupPoint] = {}
        for (p, start, category, _action, kind), d in deltas.items():
            if p != period or not since <= start <= until:
                continue
            point = merged.get((start, category, kind))
            if point is None:
                merged[(start, category, kind)] = RollupPoint(start, category, kind, d.count, d.error_count,
                                                              d.duration_sum, d.duration_count,
                                                              d.duration_min, d.duration_max)
                continue
            point.count += d.count
            point.error_count += d.error_count
            point.duration_sum += d.duration_sum
            point.duration_count += d.duration_count
            if d.duration_min is not None:
                point.duration_min = d.duration_min if point.duration_min is None else min(point.duration_min,
                                                                                            d.duration_min)
            if d.duration_max is not None:
                point.duration_max = d.duration_max if point.duration_max is None else max(point.duration_max,
                                                                                            d.duration_max)
        return [merged[k] for k in sorted(merged)]

    def clean(self, *, older_than_ms: int | None = None, session_ids: Sequence[str] = (),
              categories: Sequence[str] = ()) -> int:
        """Delete events matching every given criterion (all when none is given); return the count."""
        cutoff = resolve_older_than(older_than_ms)
        with self._lock:
            gone = [e for e in self._events.values()
                    if (cutoff is None or e.timestamp < cutoff)
                    and (not session_ids or e.session_id in session_ids)
                    and (not categories or e.category in categories)]
            for e in gone:
                assert e.event_id is not None
                del self._events[e.event_id]
            if gone:
                self._order = [k for k in self._order if k[1] in self._events]
            touched = {e.session_id for e in gone if e.session_id}
            alive = {e.session_id for e in self._events.values() if e.session_id in touched}
            for sid in touched - alive:
                self._sessions.pop(sid, None)
            return len(gone)

    # -- change log: positions are an insertion counter (store/changelog.py) ----------------------

    def committed_position(self) -> int:
        """Return the position of the newest stored event (0 when there is none)."""
        with self._lock:
            return self._changes.committed_position()

    def read_committed(self, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` stored events with position > after, oldest first, with their positions."""
        with self._lock:
            return self._changes.read_committed(after, limit, self._events)

    def position_before(self, timestamp_ms: int) -> int:
        """Return the position just below the first stored event stamped at or after `timestamp_ms`."""
        with self._lock:
            return self._changes.position_before(timestamp_ms, self._events)

    def load_cursor(self, name: str) -> int | None:
        """Return exporter `name`'s position, or None."""
        with self._lock:
            return self._changes.load_cursor(name)

    def save_cursor(self, name: str, position: int) -> None:
        """Keep exporter `name`'s position for the life of the process."""
        with self._lock:
            self._changes.save_cursor(name, position)

    def cursors(self) -> dict[str, int]:
        """Return every exporter's position by name."""
        with self._lock:
            return self._changes.cursors()

    def record_audit(self, actor: str, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None, *, table: str | None = None,
                     record_id: str | None = None, old_values: dict[str, Any] | None = None,
                     new_values: dict[str, Any] | None = None) -> None:
        """Append one audit entry, chained by hash to the previous one (as the SQL store does)."""
        with self._lock:
            prev = self._audit[-1]["hash"] if self._audit else audit.GENESIS
            row: dict[str, Any] = {
                "id": len(self._audit) + 1, "timestamp": now_ms(), "actor": actor, "action": action,
                "target": target, "details": audit.dumps(details), "table_name": table, "record_id": record_id,
                "old_values": audit.dumps(old_values), "new_values": audit.dumps(new_values), "prev_hash": prev}
            row["hash"] = audit.entry_hash(prev, row)
            self._audit.append(row)

    def _audit_entries(self, *, table: str | None = None, since: int | None = None, action: str | None = None,
                       record_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = list(self._audit)
        return [audit.decoded(r) for r in rows
                if (table is None or r["table_name"] == table) and (since is None or r["timestamp"] >= since)
                and (action is None or r["action"] == action) and (record_id is None or r["record_id"] == record_id)]

    def audit_log(self, limit: int = 100, *, table: str | None = None, since: int | None = None,
                  action: str | None = None) -> list[dict[str, Any]]:
        """Return the newest audit entries first (of one table, action, or since a time, when given)."""
        found = self._audit_entries(table=table, since=since, action=action)
        return list(reversed(found[-limit:])) if limit else []

    def audit_history(self, table: str, record_id: str) -> list[dict[str, Any]]:
        """Return one record's audit entries oldest first, with old/new values and changed_fields."""
        return self._audit_entries(table=table, record_id=record_id)

    def verify_audit(self) -> list[str]:
        """Return where the audit hash chain is broken ([] when intact)."""
        with self._lock:
            return audit.verify([dict(r) for r in self._audit])

    def record_writer_run(self, run: dict[str, Any], timeout: float | None = None) -> None:
        """Insert or update one writer's metrics (keyed by run_id); started_at stays as first recorded."""
        row = writer_run_row(run)
        with self._lock:
            old = self._runs.get(row["run_id"])
            if old is not None:
                row["started_at"] = old["started_at"]
            self._runs[row["run_id"]] = row

    def writer_runs(self, since_ms: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the writers' metrics updated at or after since_ms, the most recently updated first."""
        with self._lock:
            runs = [dict(r) for r in self._runs.values() if since_ms is None or r["updated_at"] >= since_ms]
        runs.sort(key=lambda r: (r["updated_at"], r["run_id"]), reverse=True)
        return runs[:limit]

    def compact(self) -> None:
        """Nothing to reclaim."""

    def prune(self) -> int:
        """No retention settings: nothing to prune."""
        return 0

    def check(self) -> list[str]:
        """Nothing can be corrupt in a memory store: no problems."""
        return []

    def after_fork(self) -> None:
        """In a forked child: a new lock (the parent's copy may have been held by another thread)."""
        self._lock = threading.Lock()

    def index_text(self, max_rows: int | None = None) -> int:
        """Nothing to index: searches scan the events."""
        return 0

    def unindexed_rows(self) -> int:
        """No text index: nothing waits for it."""
        return 0

    def flush(self) -> None:
        """Nothing buffered."""

    def health(self) -> dict[str, Any]:
        """Return counts; a memory store is always reachable."""
        with self._lock:
            return {"reachable": not self._closed, "name": "memory", "backend": "memory", "events": len(self._events),
                    "sessions": len(self._sessions), "size_bytes": None}

    def shutdown(self) -> None:
        """Mark closed; data stays readable until the object goes."""
        self._closed = True


def _cell(event: TelemetryEvent, name: str) -> Any:
    """One column of an event as the SQL store keeps it: metadata and context as compact JSON text."""
    if name in ("metadata", "context"):
        text = event.metadata_json if name == "metadata" else event.context_json
        value = event.metadata if name == "metadata" else event.context
        if text is None and value is not None:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text
    return getattr(event, name)
