"""The Dialect strategy base and the helpers both dialects share (URLs, SQLite pragmas, compiled SQL)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Table,
    delete,
)
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ClauseElement

from ...errors import StoreError
from ..schema import EVENT_COLUMNS, events, session_totals
from .pool import PoolOptions

_TS: Final = EVENT_COLUMNS.index("timestamp")
PG_WRITE_LOCK: Final = "LOCK TABLE sessions IN ROW EXCLUSIVE MODE"

SQLITE: Final = "sqlite"
POSTGRESQL: Final = "postgresql"
_WATERMARK: Final = "SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid'"
# 8 MB of page cache holds the hot index pages of a growing table while ingesting (measured as fast
# as 32 MB with 1M events, at 24 MB less resident memory).
WRITER_CACHE_KB: Final = 8000
# Tables whose size the store reports and whose indexes `reindex` rebuilds on PostgreSQL.
_SIZED_TABLES: Final = ("events", "sessions", "rollups", "audit_log")
_INDEXED_TABLES: Final = ("events", "sessions", "rollups", "session_totals", "session_rollups", "audit_log")
_PG_INDEXED_TABLES: Final = (*_INDEXED_TABLES, "event_ids", "totals_deltas")
# Tables whose planner statistics the SQLite store keeps fresh (Dialect.refresh_statistics).
ANALYZED_TABLES: Final = (*_INDEXED_TABLES, "writer_runs")


def to_url(url_or_path: str | os.PathLike[str]) -> str:
    """Return a SQLAlchemy URL: plain paths become sqlite:/// URLs, postgres:// gets the psycopg driver."""
    text = os.fspath(url_or_path)
    if "://" not in text:
        return "sqlite:///" + os.path.abspath(os.path.expanduser(text))
    if text.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


def sqlite_path(url: str) -> str | None:
    """Return the file path of a sqlite URL, or None for in-memory databases and other dialects."""
    parsed = make_url(url)
    if parsed.get_backend_name() != SQLITE or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def apply_sqlite_pragmas(conn: Any, busy_timeout_ms: int, wal: bool) -> None:
    """Set the per-connection pragmas every store connection (writer and readers) needs."""
    # Wait this long for another writer (the CLI, a second process) instead of failing at once.
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    # SQLite leaves foreign keys off by default; ON DELETE CASCADE from sessions needs them.
    conn.execute("PRAGMA foreign_keys = ON")
    if wal:
        # WAL: readers (CLI, dashboard) never block the writer thread and vice versa. Persistent.
        conn.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL fsyncs only at checkpoints: a commit survives a process crash (kill -9)
        # and costs no fsync; only an OS crash or power loss can lose the last commits.
        conn.execute("PRAGMA synchronous = NORMAL")
    # Temporary b-trees (ORDER BY, GROUP BY of stats) in memory, not in temp files.
    conn.execute("PRAGMA temp_store = MEMORY")


def check_sqlite_file(path: str) -> None:
    """Raise StoreError with a one-line message when the file exists but is not a SQLite database."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    try:
        conn = sqlite3.connect(path)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a SQLite database ({exc})") from None


def compile_positional(stmt: ClauseElement, dialect: SADialect) -> tuple[str, tuple[str, ...]]:
    """Compile a statement once: its SQL text and the bind names in parameter order."""
    compiled = stmt.compile(dialect=dialect)
    names: list[str] = getattr(compiled, "positiontup", None) or []
    return compiled.string, tuple(names)


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _refused_value(exc: BaseException) -> bool:
    # Raised by the DBAPI while binding a value it cannot hold: an int past 64 bits, a lone surrogate
    # (UnicodeEncodeError is a ValueError), a type it cannot adapt.
    return isinstance(exc, OverflowError | ValueError | TypeError)


class Writes:
    """Where the writer sends one batch's inserts: each runs at once (Dialect.writes; PostgreSQL combines them)."""

    def __init__(self, dialect: Dialect, cur: Any) -> None:
        self.dialect, self.cur = dialect, cur

    def insert_many(self, insert_sql: str, types: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert (or upsert) rows with a compiled one-row statement (Dialect.insert_many)."""
        self.dialect.insert_many(self.cur, insert_sql, types, rows)

    def insert_events(self, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert new event rows (Dialect.insert_events)."""
        self.dialect.insert_events(self.cur, insert_sql, rows)

    def flush(self) -> None:
        """Send what is still held back (nothing here)."""


class Dialect:
    """The strategy a SQLStore asks for every SQLite / PostgreSQL difference."""

    name: ClassVar[str]
    placeholder: ClassVar[str]
    # PostgreSQL: look event ids up before inserting (a failed executemany aborts psycopg's pipeline
    # noisily); SQLite: insert optimistically, replays are rare.
    lookup_ids_first: ClassVar[bool]
    # Whether `contains` is served by an index without the store's own text index (pg_trgm).
    native_text_search: ClassVar[bool]
    # Whether VACUUM gives space back to the file system, so prune can loop until under max_size_mb.
    vacuum_shrinks: ClassVar[bool]
    # The events column exporters follow (store/sql/changelog.py), and whether deleting the newest rows
    # lets new rows take their positions again (then cursors are clamped in the deleting transaction).
    position_column: ClassVar[str]
    reuses_positions: ClassVar[bool]
    # Whether positions commit in order even with writers in several processes (else followers stop at
    # a safe horizon, store/sql/horizon.py), and whether several replicas share the database (then
    # scheduled jobs take leases and commits are announced: store/sql/cluster.py).
    positions_commit_in_order: ClassVar[bool]
    shared_by_replicas: ClassVar[bool]
    # Events partitioned by time (PostgreSQL, store/sql/partitions.py): retention drops partitions, and
    # event ids are unique through the ids table, not the events table's own key.
    partitioned: ClassVar[bool] = False
    ids_table: ClassVar[str] = "events"
    # How long get_stats() and health() may reuse a size_bytes() reading: 0 where it is a stat of a
    # file or two (SQLite); PostgreSQL's costs 10-15 ms of server work at 36 partitions.
    size_max_age_s: ClassVar[float] = 0.0
    # Whether the writer looks ids up with one `= ANY(array)` statement each (PostgreSQL) rather than
    # IN lists of at most CHUNK (SQLite has no arrays).
    array_lookups: ClassVar[bool] = False

    def positional(self) -> SADialect:
        """A dialect whose compiled statements take positional parameters, for DBAPI executemany."""
        raise NotImplementedError

    def upsert_insert(self) -> Any:
        """The dialect's insert() that has on_conflict_do_update."""
        raise NotImplementedError

    def least(self, a: Any, b: Any) -> Any:
        """Smaller of two nullable values."""
        raise NotImplementedError

    def greatest(self, a: Any, b: Any) -> Any:
        """Larger of two nullable values."""
        raise NotImplementedError

    def nulls_low(self, column: Any, desc: bool) -> Any:
        """An ORDER BY term on which NULL sorts below every value (first ascending, last descending).

        The order migration 0013's session sort indexes are built in, so a sorted page is an index walk.
        """
        raise NotImplementedError

    def metadata_equals(self, column: Any, key: str, value: Any) -> ColumnElement[bool]:
        """Match events whose metadata[key] equals value, JSON types agreeing (a missing key equals None)."""
        raise NotImplementedError

    def contains(self, text: str, *, fts: bool) -> ColumnElement[bool]:
        """Match events whose label or stream_data contains text, case-insensitively."""
        raise NotImplementedError

    def make_engine(self, url: str, *, busy_timeout_ms: int, wal: bool, pool: PoolOptions | None = None) -> Engine:
        """Create the engine every connection of the store comes from (pool options: PostgreSQL only)."""
        raise NotImplementedError

    def totals_table(self) -> Table:
        """The table a writer adds its per-category totals to (a row per category, or per writer and category)."""
        return session_totals

    def totals_source(self) -> FromClause:
        """What reads take per-category totals from, with session_totals' columns."""
        return session_totals

    def fold_totals(self, conn: Connection) -> None:
        """Move writers' pending total deltas into session_totals (in the caller's transaction)."""

    def delete_events(self, conn: Connection, where: list[ColumnElement[bool]]) -> int:
        """Delete the matching events (and whatever keeps their ids); return how many went."""
        return int(conn.execute(delete(events).where(*where)).rowcount)

    def upkeep(self, conn: Connection, interval_ms: int, now: int, ahead: int) -> list[str]:
        """Periodic schema upkeep (partitions `ahead`, totals folded); return the partitions created."""
        return []

    def refresh_statistics(self, engine: Engine, lock: AbstractContextManager[Any], *,
                           every_table: bool = False) -> list[str]:
        """Gather planner statistics where they are missing or stale; return the tables analyzed.

        lock: held only while statistics are written (it serialises with the store's writer thread).
        every_table: analyze every store table, stale or not (after VACUUM). PostgreSQL: nothing, its
        autovacuum analyzes each table (and each events partition) as it changes.
        """
        return []

    def prepare_writer(self, conn: Any) -> None:
        """Tune the writer's DBAPI connection once, after it is checked out of the pool."""

    def writes(self, cur: Any) -> Writes:
        """Where one batch's inserts go; the writer flush()es it after the last."""
        return Writes(self, cur)

    def insert_many(self, cur: Any, insert_sql: str, types: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """Run a compiled INSERT (or upsert) of one VALUES row for each of rows; types: its parameters' column types."""
        cur.executemany(insert_sql, rows)

    def insert_events(self, cur: Any, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert new event rows (EVENT_COLUMNS order) in the writer's open transaction."""
        cur.executemany(insert_sql, rows)

    def write_scope(self, conn: Any) -> AbstractContextManager[Any]:
        """What the writer's whole transaction runs inside, commit or rollback included (PostgreSQL: a pipeline)."""
        return nullcontext()

    def begin(self, cur: Any) -> None:
        """Start the writer's transaction (the DBAPI begins implicitly unless told otherwise)."""

    def lock_for_write(self, cur: Any) -> None:
        """First statement of a batch's write transaction: table locks in a fixed order (PostgreSQL)."""

    def commit(self, conn: Any, cur: Any) -> None:
        """Commit the writer's transaction."""
        conn.commit()

    def rollback(self, conn: Any, cur: Any) -> None:
        """Roll the writer's transaction back."""
        conn.rollback()

    def connection_lost(self, conn: Any) -> bool:
        """Whether the writer connection can no longer be used (closed or broken by the server)."""
        return False

    def for_writing(self, conn: Connection) -> Connection:
        """A Core connection whose next transaction takes the write lock up front."""
        return conn

    def begin_maintenance(self, conn: Connection) -> None:
        """First statement of a maintenance write transaction (PostgreSQL: the writers' lock order)."""

    def lock_for_append(self, conn: Connection, table: str) -> None:
        """Serialise appends to a hash-chained table (the audit log) across processes, until commit."""
        conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")

    def has_text_index(self, conn: Connection) -> bool:
        """Whether the store keeps its own deferred text index (SQLite FTS5 trigram) in this database."""
        return False

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a write failed on a passing condition: a lock, a busy database, a lost connection."""
        return False

    def is_disk_full(self, exc: BaseException) -> bool:
        """Whether a write failed because the database's disk is full (waited out like a lock)."""
        return False

    def is_refused(self, exc: BaseException, integrity_error: type[BaseException]) -> bool:
        """Whether a write failed on the rows themselves: a value or constraint the database refuses."""
        return _refused_value(exc) or isinstance(exc, integrity_error)

    def size_bytes(self, engine: Engine | None, path: str | None) -> int:
        """Bytes the store occupies."""
        raise NotImplementedError

    def used_bytes(self, engine: Engine, path: str | None) -> int:
        """Bytes in use, not counting free pages: what deleting rows reduces before a VACUUM."""
        return self.size_bytes(engine, path)

    def integrity_problems(self, conn: Connection) -> list[str]:
        """Run the database's own integrity checks; return the problems found."""
        conn.exec_driver_sql("SELECT 1")
        return []

    def vacuum(self, engine: Engine, writer: Any) -> None:
        """Reclaim the space of deleted rows."""
        raise NotImplementedError

    def checkpoint(self, writer: Any, *, truncate: bool = False) -> None:
        """Make what the writer committed durable in the main file (SQLite WAL); nothing elsewhere."""

    @contextmanager
    def lock_wait_at_most(self, writer: Any, deadline: float | None) -> Iterator[None]:
        """Within this block the writer waits for another process's lock only until deadline (monotonic)."""
        yield

    def reindex(self, engine: Engine, writer: Any) -> None:
        """Rebuild every index of the store's tables."""
        raise NotImplementedError
