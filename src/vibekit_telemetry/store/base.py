"""The storage provider interface (seed 000 §3.1) and the records queries return."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ValidationError
from ..events import PUBLIC_FIELDS, TelemetryEvent
from ..query import QueryFilter, SessionFilter, StatsFilter

if TYPE_CHECKING:
    from .adhoc_sql import SqlLimits, SqlResult


@dataclass(slots=True)
class Session:
    """A session as maintained by the store while its events arrive."""

    id: str
    category: str | None
    action: str | None
    status: str
    start_time: int
    end_time: int | None = None
    duration: float | None = None
    event_count: int = 0
    stream_count: int = 0
    error_count: int = 0
    last_event_time: int | None = None
    label: str | None = None
    sandbox_id: str | None = None
    repo_url: str | None = None
    metadata: dict[str, Any] | None = None
    events: list[TelemetryEvent] | None = None

    def to_dict(self, *, camel: bool = False) -> dict[str, Any]:
        """Return the session as a plain dict; events included when they were loaded."""
        out = {k: v for k, v in asdict(self).items() if k != "events"}
        if self.events is not None:
            out["events"] = [e.to_dict(camel=camel) for e in self.events]
        if camel:
            out = {_camel(k): v for k, v in out.items()}
        return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(slots=True)
class GroupStats:
    """Counts for one value of the requested breakdown."""

    key: str | None
    events: int
    sessions: int
    errors: int


@dataclass(slots=True)
class Stats:
    """What `telemetry stats` shows: totals, share per agent, date range, size, average duration."""

    total_events: int
    total_sessions: int
    active_sessions: int
    error_events: int
    agents: dict[str, int]
    first_timestamp: int | None
    last_timestamp: int | None
    database_size_bytes: int | None
    avg_session_duration_ms: float | None
    group_by: str | None = None
    groups: list[GroupStats] = field(default_factory=list)
    # Sessions the writers' `sample` step saw and kept, and the kept fraction (scale counts by 1 / it);
    # set by Telemetry.get_stats, `telemetry stats` and GET /api/stats from writer_runs (issue 13).
    sampling: dict[str, Any] | None = None

    def agent_shares(self) -> dict[str, float]:
        """Return each agent's share of all events, from 0 to 1."""
        total = sum(self.agents.values())
        return {k: (v / total if total else 0.0) for k, v in self.agents.items()}

    def to_dict(self) -> dict[str, Any]:
        """Return the stats as a plain dict, with agent shares included."""
        out = asdict(self)
        out["agent_shares"] = self.agent_shares()
        return out


@dataclass(slots=True)
class ErrorGroup:
    """Error events sharing one value of a field (label, the message, by default): how many, when, where."""

    key: str | None
    count: int
    sessions: int
    first_seen: int
    last_seen: int
    sample_session_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the group as a plain dict."""
        return asdict(self)


# Fields error_groups() can group by, and how many session ids a group shows as samples.
ERROR_GROUP_FIELDS = ("label", "category", "action", "session_id")
ERROR_GROUP_SAMPLES = 3


@dataclass(slots=True)
class BatchResult:
    """What a store did with a batch: stored, skipped as duplicates, rejected with a reason."""

    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[TelemetryEvent, str]] = field(default_factory=list)


@runtime_checkable
class StorageProvider(Protocol):
    """A sink the background writer fans batches out to; queryable ones also answer reads."""

    name: str
    supports_query: bool

    def initialize(self) -> None:
        """Open connections and create or migrate the schema."""

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult | None:
        """Store validated events (ids and JSON filled in) in one transaction."""

    def flush(self) -> None:
        """Make everything stored so far durable."""

    def shutdown(self) -> None:
        """Release connections; safe to call twice."""


@runtime_checkable
class QueryableStore(StorageProvider, Protocol):
    """A provider that also answers queries, sessions, stats and maintenance."""

    def store(self, event: TelemetryEvent) -> BatchResult | None:
        """Store one event."""

    def query(self, filter_: QueryFilter) -> list[TelemetryEvent]:
        """Return the events matching the filter, each tracked event as its own event."""

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session, or None."""

    def get_sessions(self, filter_: SessionFilter) -> list[Session]:
        """Return the sessions matching the filter."""

    def existing_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Return which of these session ids the store holds."""

    def get_stats(self, filter_: StatsFilter) -> Stats:
        """Return totals and the requested breakdown."""

    def clean(self, *, older_than_ms: int | None = None, session_ids: Sequence[str] = (),
              categories: Sequence[str] = ()) -> int:
        """Delete matching events (and sessions left empty); return how many events went."""

    def compact(self) -> None:
        """Reclaim space (VACUUM)."""

    def health(self) -> dict[str, Any]:
        """Return the store's own health: reachable, size, counts."""


# -- capability protocols: what a store can do beyond storing and answering queries ----------------
# Callers check `isinstance(store, Maintainable)` (runtime_checkable) instead of probing with getattr.


@runtime_checkable
class EventIterable(Protocol):
    """A store that streams any number of matching events in constant memory."""

    def iter_events(self, filter_: QueryFilter, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        """Yield the matching events in the filter's order, reading chunk_size rows at a time."""


@runtime_checkable
class RowIterable(Protocol):
    """A store that streams matching events as raw rows, no event object per row (exports' fast path)."""

    def iter_rows(self, filter_: QueryFilter, columns: Sequence[str] | None = None,
                  chunk_size: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        """Yield pages (lists) of up to chunk_size tuples in `columns` order (default: PUBLIC_FIELDS), in
        the filter's order; metadata and context as JSON text, encrypted cells decrypted."""


def check_row_columns(columns: Any) -> tuple[str, ...]:
    """Return the columns asked of iter_rows as a tuple (None: PUBLIC_FIELDS); ValidationError naming the bad ones."""
    if columns is None:
        return PUBLIC_FIELDS
    expected = "distinct event field names (" + ", ".join(PUBLIC_FIELDS) + ")"
    if isinstance(columns, str | bytes) or not isinstance(columns, Sequence):
        raise ValidationError("columns", expected, columns)
    names = tuple(columns)
    unknown = [c for c in names if c not in PUBLIC_FIELDS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValidationError("columns", expected, unknown or list(names))
    return names


@runtime_checkable
class EventLookup(Protocol):
    """A store that tells which event ids it already holds (imports skip them: idempotent by event_id)."""

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Return which of these event ids are stored."""


@runtime_checkable
class ReadInsights(Protocol):
    """A store that answers the CLI's and dashboard's canned questions itself (no client-side scans)."""

    def error_groups(self, filter_: QueryFilter, by: str = "label", limit: int | None = None) -> list[ErrorGroup]:
        """Return the error events matching the filter grouped by `by` (ERROR_GROUP_FIELDS), most frequent first."""

    def longest_sessions(self, filter_: SessionFilter, limit: int = 10) -> list[Session]:
        """Return the finished sessions matching the filter, longest duration first."""


@dataclass(slots=True)
class RollupPoint:
    """One rollup bucket of one agent and event type: counts and duration statistics (analytics series)."""

    bucket_start: int
    category: str
    event_type: str
    count: int
    error_count: int
    duration_sum: float
    duration_count: int
    duration_min: float | None = None
    duration_max: float | None = None


# Rollup periods rollup_series() accepts (store/_batch.py ROLLUP_PERIODS), and its row cap per call.
SERIES_PERIODS = ("minute", "hour", "day")
MAX_SERIES_POINTS = 200_000


def check_series_args(period: str, since: int, until: int) -> None:
    """Refuse a rollup_series request naming the bad argument (ValidationError)."""
    from ..errors import ValidationError

    if period not in SERIES_PERIODS:
        raise ValidationError("period", f"one of {', '.join(SERIES_PERIODS)}", period)
    for name, value in (("since", since), ("until", until)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(name, "epoch milliseconds (int)", value)
    if until < since:
        raise ValidationError("until", f"a time at or after since ({since})", until)


@runtime_checkable
class ReadSeries(Protocol):
    """A store that serves time series from its maintained rollups (never by scanning raw events)."""

    def rollup_series(self, period: str, since: int, until: int,
                      categories: Sequence[str] = ()) -> list[RollupPoint]:
        """Return the `period` buckets starting in [since, until] per category and event type, oldest first."""


# Keys the breakdown read methods group by: event counts come from the rollups (category, action,
# event type); session counts and percentiles from the sessions (category, action, status).
EVENT_BREAKDOWN_KEYS = ("category", "action", "event_type")
SESSION_BREAKDOWN_KEYS = ("category", "action", "status")
# Nearest-rank percentiles session_breakdown(percentiles=True) reports.
BREAKDOWN_PERCENTILES = (50, 90, 95, 99)


@dataclass(slots=True)
class EventGroup:
    """Events and error events of one breakdown group (key: one value per key asked, None for none)."""

    key: tuple[str | None, ...]
    events: int
    errors: int


@dataclass(slots=True)
class SessionGroup:
    """Sessions of one breakdown group; percentiles (nearest rank) over its ended sessions when asked."""

    key: tuple[str | None, ...]
    sessions: int
    active: int
    ended: int
    duration_sum: float
    duration_count: int
    duration_percentiles: dict[int, float] = field(default_factory=dict)
    events_percentiles: dict[int, float] = field(default_factory=dict)


def check_breakdown_keys(by: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """Return the keys if each is allowed and none repeats, else raise naming `by` (ValidationError)."""
    from ..errors import ValidationError

    if isinstance(by, str) or len(set(by)) != len(by) or any(k not in allowed for k in by):
        raise ValidationError("by", f"distinct keys among {', '.join(allowed)}", by)
    return tuple(by)


@runtime_checkable
class ReadBreakdown(Protocol):
    """A store that answers analytics windows and breakdowns from its rollups (never a scan of raw events)."""

    def rollup_totals(self, since: int, until: int, categories: Sequence[str] = (),
                      bucket: str | None = None) -> list[RollupPoint]:
        """Return the events of the minutes [since, until] per category and event type, summed per
        `bucket` (minute, hour or day: bucket_start is the bucket's start) or over the whole window
        (None: bucket_start is since's minute); whole hours and days come from their own rollups."""

    def event_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                        categories: Sequence[str] = ()) -> list[EventGroup]:
        """Return events and errors per combination of EVENT_BREAKDOWN_KEYS values (whole minutes), most first."""

    def session_breakdown(self, by: Sequence[str], since: int | None = None, until: int | None = None,
                          categories: Sequence[str] = (), percentiles: bool = False) -> list[SessionGroup]:
        """Return sessions started in [since, until] per combination of SESSION_BREAKDOWN_KEYS values,
        most first; with percentiles, BREAKDOWN_PERCENTILES of duration and events per ended session."""


@runtime_checkable
class ChangeLog(Protocol):
    """A durable store that exporters follow: committed events in commit order, by a position.

    Positions are integers, strictly increasing in commit order and never reused (not even after
    the newest rows are deleted), so a cursor saved at position p means "everything <= p was sent".
    """

    def committed_position(self) -> int:
        """Return the position of the newest committed event (0 when there is none)."""

    def read_committed(self, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` committed events with position > after, oldest first, with their positions."""

    def position_before(self, timestamp_ms: int) -> int:
        """Return the position just below the first committed event stamped at or after `timestamp_ms`.

        committed_position() when there is none. Where a new exporter starts "at the end" but could not
        read the position when it started, this is where it begins: nothing tracked since is skipped.
        """

    def load_cursor(self, name: str) -> int | None:
        """Return the persisted position of exporter `name`, or None if it never saved one."""

    def save_cursor(self, name: str, position: int) -> None:
        """Persist exporter `name`'s position (everything at or below it was delivered)."""

    def cursors(self) -> dict[str, int]:
        """Return every persisted exporter position by name."""


@runtime_checkable
class JobLeasing(Protocol):
    """A store several replicas share: a scheduled job runs in the replica holding its lease only."""

    def job_lease(self, name: str) -> bool | None:
        """Whether this process holds job `name`'s lease (taking it if free); None where there are no replicas."""


@runtime_checkable
class TimeBounded(Protocol):
    """A store whose flush and shutdown can wait on its own upkeep (a VACUUM, another process's lock): bounded."""

    def flush_within(self, timeout: float | None) -> bool:
        """Do what flush() does, giving up (False) once timeout seconds have passed; None waits as long as it takes."""

    def shutdown_within(self, timeout: float | None) -> bool:
        """Do what shutdown() does; False when the store was still busy after timeout seconds (it closes at exit)."""


@runtime_checkable
class CommitNotices(Protocol):
    """A store several replicas share: they announce commits to each other (live streams follow)."""

    def commit_notices(self) -> Any:
        """A new channel (notify(payload), wait(timeout_s) -> payloads, close()), or None if not shared."""


@runtime_checkable
class Maintainable(Protocol):
    """A store with periodic upkeep: retention, reclaiming space, text index catch-up, checks."""

    def prune(self) -> int:
        """Apply the store's own retention (prune_days, max_size_mb); return how many events went."""

    def compact(self) -> None:
        """Reclaim space (VACUUM)."""

    def index_text(self, max_rows: int | None = None) -> int:
        """Bring the text index up to date (at most max_rows rows); return how many rows it covered."""

    def unindexed_rows(self) -> int:
        """Return how many stored rows the text index does not cover yet (searches scan them)."""

    def check(self) -> list[str]:
        """Return integrity problems found (empty when healthy)."""


@runtime_checkable
class Upkeepable(Protocol):
    """A store whose schema needs periodic upkeep (PostgreSQL: events partitions ahead, totals deltas folded)."""

    def upkeep(self) -> list[str]:
        """Do the upkeep; return the partitions created."""


@runtime_checkable
class Auditable(Protocol):
    """A store that keeps the audit trail: who did what, when, to which record, with old and new values.

    Entries are chained by hash (store/audit.py): verify_audit() finds any entry changed or removed.
    """

    def record_audit(self, actor: str, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None, *, table: str | None = None,
                     record_id: str | None = None, old_values: dict[str, Any] | None = None,
                     new_values: dict[str, Any] | None = None) -> None:
        """Append one audit record, chained to the previous one."""

    def audit_log(self, limit: int = 100, *, table: str | None = None, since: int | None = None,
                  action: str | None = None) -> list[dict[str, Any]]:
        """Return the newest audit records (optionally of one table, action, or since a time in epoch ms)."""

    def audit_history(self, table: str, record_id: str) -> list[dict[str, Any]]:
        """Return one record's entries oldest first, with old/new values and changed_fields (seed 002)."""

    def verify_audit(self) -> list[str]:
        """Return where the hash chain is broken ([] when no entry was changed or removed)."""


@runtime_checkable
class AdhocSql(Protocol):
    """A store that runs one read-only ad-hoc SQL statement, bounded in time, rows and memory (store/adhoc_sql.py)."""

    def run_readonly_sql(self, sql: str, limits: SqlLimits) -> SqlResult:
        """Return the statement's columns and rows; AdhocSqlError when refused, stopped or failed."""


@runtime_checkable
class WriterRunRecorder(Protocol):
    """A store that keeps writers' metrics so another process (`telemetry stats --performance`) can read them."""

    def record_writer_run(self, run: dict[str, Any], timeout: float | None = None) -> None:
        """Insert or update one writer's metrics row; a store busy past timeout seconds raises TransientStoreError."""

    def writer_runs(self, since_ms: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return recent writers' metrics rows, newest first."""


@runtime_checkable
class ForkAware(Protocol):
    """A store holding connections or locks that a forked child must not reuse."""

    def after_fork(self) -> None:
        """In the child: disown the parent's connections, re-create locks; reopen lazily."""


class BaseStorageProvider:
    """Convenience base for custom write-only providers: implement store_batch, get the rest."""

    name = "custom"
    supports_query = False

    def initialize(self) -> None:
        """Nothing to open by default."""

    def store(self, event: TelemetryEvent) -> BatchResult | None:
        """Store one event through store_batch."""
        return self.store_batch([event])

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult | None:
        """Store a batch; subclasses override this."""
        raise NotImplementedError

    def flush(self) -> None:
        """Nothing buffered by default."""

    def shutdown(self) -> None:
        """Nothing to release by default."""
