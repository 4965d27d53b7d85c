"""Turn a batch of events into what a store writes: rows, per-session deltas, rollup deltas.

Shared by the SQL and memory stores so both apply the same session rules. Everything is
aggregated in Python: one delta per session and one per rollup bucket, however many events.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..events import END_STATUS_ALIASES, TelemetryEvent, encode_json, now_ms
from ..ids import uuid7
from .base import BatchResult

# Rollup periods and their bucket widths in ms; here, not in schema.py, so MemoryStore needs no SQLAlchemy.
ROLLUP_PERIODS: Final = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
# (period, bucket_start, category, action ('' when none), event_type)
RollupKey = tuple[str, int, str, str, str]
# Session counters bucketed by start time (session_rollups, migration 0008): hour and day only.
SESSION_ROLLUP_PERIODS: Final = {"hour": ROLLUP_PERIODS["hour"], "day": ROLLUP_PERIODS["day"]}
# (period, bucket_start of the session's start_time, category ('' when none))
SessionRollupKey = tuple[str, int, str]
CATEGORY_REASON: Final = "category: expected a category for an event outside any session"
# The category of a session created from an event that names none (its start was lost).
UNKNOWN_CATEGORY: Final = "unknown"


@dataclass(slots=True)
class KnownSession:
    """What the planner needs to know about a session already stored."""

    category: str | None
    start_time: int
    status: str = "active"
    end_time: int | None = None
    duration: float | None = None


@dataclass(slots=True)
class TotalsDelta:
    """What one batch adds to one category's running totals (the session_totals table).

    Sessions count by their state after the batch: a session that ends, or is renamed to another
    category by a late start, moves between the counters (the planner subtracts its state before).
    """

    events: int = 0
    error_events: int = 0
    sessions: int = 0
    active_sessions: int = 0
    ended_sessions: int = 0
    duration_sum: float = 0.0
    duration_count: int = 0

    def is_zero(self) -> bool:
        """True when applying this delta would change nothing."""
        return not (self.events or self.error_events or self.sessions or self.active_sessions
                    or self.ended_sessions or self.duration_sum or self.duration_count)


# A session's contribution to the totals: (category, status, end_time, duration).
SessionState = tuple[str | None, str, int | None, float | None]


def add_session_state(totals: dict[str, TotalsDelta], state: SessionState, sign: int) -> None:
    """Add (sign 1) or remove (sign -1) one session in the state given to its category's totals."""
    category = state[0] or ""
    t = totals.get(category)
    if t is None:
        t = totals[category] = TotalsDelta()
    _count(t, state, sign)


def add_session_buckets(buckets: dict[SessionRollupKey, TotalsDelta], state: SessionState, start_time: int,
                        sign: int) -> None:
    """Add or remove one session in the hour and day session_rollups buckets of its start time."""
    category = state[0] or ""
    for period, size in SESSION_ROLLUP_PERIODS.items():
        key = (period, start_time // size * size, category)
        t = buckets.get(key)
        if t is None:
            t = buckets[key] = TotalsDelta()
        _count(t, state, sign)


def _count(t: TotalsDelta, state: SessionState, sign: int) -> None:
    _, status, end_time, duration = state
    t.sessions += sign
    if status == "active":
        t.active_sessions += sign
    if end_time is not None:
        t.ended_sessions += sign
        if duration is not None:
            t.duration_sum += sign * duration
            t.duration_count += sign


@dataclass(slots=True)
class SessionDelta:
    """The change one batch makes to one session; `new` ones are inserted whole."""

    id: str
    new: bool
    start_time: int
    category: str | None = None
    action: str | None = None
    label: str | None = None
    sandbox_id: str | None = None
    repo_url: str | None = None
    metadata_json: str | None = None
    started: bool = False
    event_count: int = 0
    stream_count: int = 0
    error_count: int = 0
    last_event_time: int | None = None
    status: str | None = None
    end_time: int | None = None
    duration: float | None = None


@dataclass(slots=True)
class RollupDelta:
    """Counts and duration statistics to add to one rollup bucket."""

    count: int = 0
    error_count: int = 0
    duration_sum: float = 0.0
    duration_count: int = 0
    duration_min: float | None = None
    duration_max: float | None = None


@dataclass(slots=True)
class Plan:
    """Everything one batch writes, in the order a store applies it."""

    events: list[TelemetryEvent] = field(default_factory=list)
    sessions: dict[str, SessionDelta] = field(default_factory=dict)
    rollups: dict[RollupKey, RollupDelta] = field(default_factory=dict)
    totals: dict[str, TotalsDelta] = field(default_factory=dict)
    # The same session counters per start-time bucket (events and error_events stay 0).
    session_rollups: dict[SessionRollupKey, TotalsDelta] = field(default_factory=dict)
    result: BatchResult = field(default_factory=BatchResult)

    def event_rows(self) -> list[tuple[Any, ...]]:
        """Return the events as tuples in schema.EVENT_COLUMNS order."""
        return [(e.event_id, e.session_id, e.event_type, e.category, e.action, e.label, e.value,
                 e.stream_data, e.sandbox_id, e.repo_url, e.timestamp, e.duration, e.metadata_json,
                 e.context_json, e.service_name, e.service_version) for e in self.events]


def prepare(event: TelemetryEvent) -> TelemetryEvent:
    """Fill what the writer thread normally fills (id, timestamp, JSON text) when a caller did not."""
    if event.event_id is None:
        event.event_id = uuid7(event.timestamp or None)
    if not event.timestamp:
        event.timestamp = now_ms()
    if event.metadata_json is None and event.metadata is not None:
        event.metadata_json = encode_json("metadata", event.metadata)
    if event.context_json is None and event.context is not None:
        event.context_json = encode_json("context", event.context)
    return event


def end_status(event: TelemetryEvent) -> str:
    """Return the stored status an end event asks for (completed when it names none)."""
    raw = (event.metadata or {}).get("status")
    if isinstance(raw, str):
        return END_STATUS_ALIASES.get(raw.strip().lower(), "completed")
    return "completed"


def plan_batch(events: Sequence[TelemetryEvent], known: Mapping[str, KnownSession],
               stored_ids: Container[str] = ()) -> Plan:
    """Decide what a batch stores, given the sessions and event ids the store already holds."""
    plan = Plan()
    seen: set[str] = set()
    sessions = plan.sessions
    for event in events:
        prepare(event)
        event_id = event.event_id
        assert event_id is not None
        if event_id in seen or event_id in stored_ids:
            plan.result.duplicates += 1
            continue
        sid = event.session_id
        delta = sessions.get(sid) if sid is not None else None
        stored = known.get(sid) if sid is not None and delta is None else None
        category = event.category
        if category is None:
            category = delta.category if delta is not None else stored.category if stored else None
            if category is None:
                if sid is None:
                    plan.result.rejected.append((event, CATEGORY_REASON))
                    continue
                # The session's start was lost (dropped under backpressure, another process): keep
                # the event and create the session from it; a start arriving later fills it in.
                category = UNKNOWN_CATEGORY
            event.category = category
        seen.add(event_id)
        plan.events.append(event)
        duration = event.duration
        add_event_rollups(plan.rollups, plan.totals, event.timestamp, category, event.action or "",
                          event.event_type, errors=1 if event.event_type == "error" else 0,
                          duration_sum=duration or 0.0, duration_count=0 if duration is None else 1,
                          duration=duration)
        if sid is None:
            continue
        if delta is None:
            if stored is None:
                delta = SessionDelta(sid, True, event.timestamp, category=category, action=event.action)
            else:
                delta = SessionDelta(sid, False, stored.start_time, category=stored.category)
            sessions[sid] = delta
        _apply(delta, event)
    plan.result.stored = len(plan.events)
    _plan_totals(plan, known)
    return plan


def _plan_totals(plan: Plan, known: Mapping[str, KnownSession]) -> None:
    """Per-category deltas of the sessions' running totals, by their state before and after the batch."""
    totals = plan.totals
    buckets = plan.session_rollups
    for d in plan.sessions.values():
        stored = None if d.new else known.get(d.id)
        if stored is not None:
            before: SessionState = (stored.category, stored.status, stored.end_time, stored.duration)
            after: SessionState = (
                d.category if d.started else stored.category, d.status or stored.status,
                d.end_time if d.end_time is not None else stored.end_time,
                d.duration if d.status is not None else stored.duration)
            # The stores apply a start only when it is earlier: d.start_time is min(stored, starts).
            if after == before and d.start_time == stored.start_time:
                continue  # the common case (more events of a running session): nothing moves
            add_session_state(totals, before, -1)
            add_session_buckets(buckets, before, stored.start_time, -1)
        else:
            after = (d.category, d.status or "active", d.end_time, d.duration)
        add_session_state(totals, after, 1)
        add_session_buckets(buckets, after, d.start_time, 1)
    for key in [k for k, t in totals.items() if t.is_zero()]:
        del totals[key]
    for bkey in [k for k, t in buckets.items() if t.is_zero()]:
        del buckets[bkey]


def _apply(delta: SessionDelta, event: TelemetryEvent) -> None:
    kind, ts = event.event_type, event.timestamp
    delta.event_count += 1
    if kind == "stream":
        delta.stream_count += 1
    elif kind == "error":
        delta.error_count += 1
    if delta.last_event_time is None or ts > delta.last_event_time:
        delta.last_event_time = ts
    if kind == "start":
        # A start that arrives after the session was created implicitly still names it.
        delta.started = True
        delta.start_time = min(delta.start_time, ts)
        delta.category = event.category
        delta.action = event.action
        delta.label = event.label
        delta.sandbox_id = event.sandbox_id
        delta.repo_url = event.repo_url
        delta.metadata_json = event.metadata_json
    elif kind == "end":
        delta.status = end_status(event)
        delta.end_time = ts
        elapsed = float(max(0, ts - delta.start_time))
        delta.duration = event.duration if event.duration is not None else elapsed


def add_event_rollups(rollups: dict[RollupKey, RollupDelta], totals: dict[str, TotalsDelta] | None,
                      timestamp: int, category: str, action: str, event_type: str, *, count: int = 1,
                      errors: int = 0, duration_sum: float = 0.0, duration_count: int = 0,
                      duration: float | None = None, sign: int = 1) -> None:
    """Add (sign 1) or remove (sign -1) events of one kind at one time to every rollup period and the totals.

    The one function both directions go through: the writer adds each event of a batch (count 1,
    its duration), clean() removes what it deletes per minute bucket (count n, sums). Min and max
    only grow: removal leaves them as bounds of what arrived.
    """
    for period, size in ROLLUP_PERIODS.items():
        key = (period, timestamp // size * size, category, action, event_type)
        bucket = rollups.get(key)
        if bucket is None:
            bucket = rollups[key] = RollupDelta()
        bucket.count += sign * count
        bucket.error_count += sign * errors
        bucket.duration_sum += sign * duration_sum
        bucket.duration_count += sign * duration_count
        if duration is not None and sign > 0:
            low, high = bucket.duration_min, bucket.duration_max
            bucket.duration_min = duration if low is None else min(low, duration)
            bucket.duration_max = duration if high is None else max(high, duration)
    if totals is not None:
        t = totals.get(category)
        if t is None:
            t = totals[category] = TotalsDelta()
        t.events += sign * count
        t.error_events += sign * errors


def resolve_older_than(older_than_ms: int | None) -> int | None:
    """Read clean()'s older_than_ms as a cutoff time, or as an age when it is too small to be one."""
    from ..events import MIN_TIMESTAMP_MS

    if older_than_ms is None:
        return None
    # Below 1e11 (March 1973) a value cannot be a timestamp this store holds: it is an age like 30 days.
    return now_ms() - older_than_ms if older_than_ms < MIN_TIMESTAMP_MS else older_than_ms


# The columns of a writer_runs row (schema.writer_runs, migrations 0007, 0011 and 0012), in table order.
WRITER_RUN_COLUMNS: Final = (
    "run_id", "service_name", "service_version", "host", "pid", "started_at", "updated_at",
    "events_written", "batches", "total_batch_ms", "last_batch_ms", "max_batch_ms", "dropped",
    "queue_depth", "queue_capacity", "plugins", "sessions_seen", "sessions_kept",
)
_RUN_COUNTERS: Final = tuple(c for c in WRITER_RUN_COLUMNS[7:] if c != "plugins")


def writer_run_row(run: Mapping[str, Any]) -> dict[str, Any]:
    """A complete writer_runs row from a run dict: counters default to 0, updated_at to now, started_at to it."""
    if not run.get("run_id"):
        raise ValueError("a writer run needs a run_id")
    unknown = set(run) - set(WRITER_RUN_COLUMNS)
    if unknown:
        raise ValueError(f"unknown writer run fields: {', '.join(sorted(unknown))}")
    row: dict[str, Any] = {c: run.get(c) for c in WRITER_RUN_COLUMNS}
    for name in _RUN_COUNTERS:
        if row[name] is None:
            row[name] = 0
    if row["updated_at"] is None:
        row["updated_at"] = now_ms()
    if row["started_at"] is None:
        row["started_at"] = row["updated_at"]
    return row
