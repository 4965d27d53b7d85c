"""SQLStore: the SQLite / PostgreSQL store. Core selects for reads, a compiled DBAPI fast path for writes."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy import column as sa_column
from sqlalchemy import exc as sa_exc
from sqlalchemy import table as sa_table
from sqlalchemy.engine import make_url

from ...errors import DiskFullError, RefusedRowError, StoreError, TransientStoreError, ValidationError
from ...events import TelemetryEvent, now_ms
from ...query import QueryFilter, SessionFilter, StatsFilter
from ...registry import number_option
from .. import migrate
from ..base import BatchResult, ErrorGroup, RollupPoint, Session, Stats, check_series_args
from ..schema import EVENT_INDEXES, sessions
from . import maintenance, read, read_rows, read_stats
from .audit import AuditMethods
from .changelog import ChangeLogMethods
from .closing import ClosingMethods
from .cluster import ClusterMixin
from .dialect import for_url, sqlite_path, to_url
from .direct import DirectAccess
from .fork import DISOWNED, LIVE, gate_reads
from .partitions import INTERVALS
from .pool import PoolOptions
from .read_breakdown import BreakdownReads
from .text_index import TextIndex, TextIndexMethods
from .writer import Statements, chunks, write
from .writer_process import WriterProcess, WriterProcessMethods
from .writer_runs import WriterRunMethods


class StoreRefusedRow(RefusedRowError, ValueError):
    """RefusedRowError that is also a ValueError, as the DBAPI errors it wraps were to older callers."""



class SQLStore(ChangeLogMethods, AuditMethods, DirectAccess, ClusterMixin, BreakdownReads, WriterRunMethods,
               TextIndexMethods, WriterProcessMethods, ClosingMethods):
    """Events, sessions, rollups and the audit log in SQLite (a path or sqlite:/// URL) or PostgreSQL.

    One connection stack: every connection comes from one SQLAlchemy engine. The writer keeps one
    of them checked out for the store's lifetime and drives it through the DBAPI directly (compiled
    statements, executemany: the Core layer costs a third of the ingest rate); reads and maintenance
    check pooled connections out per call, so a reader never waits for the writer's lock.

    Args:
        url_or_path: a file path, a `sqlite:///` URL, or a `postgresql+psycopg://` URL.
        enable_indexes: keep the three secondary event indexes (drop them for ingest-only stores).
        busy_timeout_ms: how long SQLite waits for another writer before "database is locked".
        prune_days: `prune()` deletes events older than this many days.
        max_size_mb: `prune()` deletes the oldest events until the database is under this size.
        wal: SQLite write-ahead logging (leave on unless the file lives on a network share).
        text_index: keep the SQLite trigram text index for `contains` up to date (default: enable_indexes).
        text_index_rows: SQLite text search is indexed in bulk after the events are written: once this
            many rows wait, the writer indexes up to this many after a batch (one transaction).
        text_index_delay_s: ... or once the oldest unindexed row has waited this long. Searches are
            exact meanwhile (the unindexed tail is scanned); flush() indexes everything.
        partition: PostgreSQL: "day" or "week", the range of each events partition upkeep() creates.
    """

    supports_query = True
    # Encryption at rest (privacy/crypto.StoreEncryption), attached by build_providers from config.security.
    encryption: Any = None

    def __init__(self, url_or_path: str | os.PathLike[str], *, enable_indexes: bool = True,
                 busy_timeout_ms: int = 5000, prune_days: float | None = None,
                 max_size_mb: float | None = None, wal: bool = True, text_index: bool | None = None,
                 text_index_rows: int = 20_000, text_index_delay_s: float = 2.0,
                 pool: PoolOptions | None = None, partition: str = "day") -> None:
        if partition not in INTERVALS:
            raise ValidationError("partition", "day or week (the range of one events partition)", partition)
        # The same checks as the storage entry's (store/factory.py), for a store built directly.
        given = {"busy_timeout_ms": busy_timeout_ms, "prune_days": prune_days, "max_size_mb": max_size_mb}
        number_option(given, "busy_timeout_ms", "SQLStore", 5000, minimum=0, maximum=600_000, integer=True)
        number_option(given, "prune_days", "SQLStore", None, minimum=0, above=True)
        number_option(given, "max_size_mb", "SQLStore", None, minimum=0, above=True)
        self.partition_ms = INTERVALS[partition]
        self.partition = partition
        self.url = to_url(url_or_path)
        self.pool = pool  # PostgreSQL connection pool (pool_size, idle_timeout); None: SQLAlchemy's defaults
        self.sql = for_url(self.url)
        self.dialect: str = self.sql.name
        self.name = self.dialect
        self.path = sqlite_path(self.url)
        self.enable_indexes, self.busy_timeout_ms, self.wal = enable_indexes, busy_timeout_ms, wal
        self.prune_days, self.max_size_mb = prune_days, max_size_mb
        self._engine: Engine | None = None
        self._writer: Any = None
        # The writer connection is used by one thread at a time: the service's writer thread, or
        # maintenance (clean, prune, compact) called from another thread.
        self._lock = threading.RLock()
        self._text: TextIndex | None = None
        self._closed = False
        self.text_index_rows, self.text_index_delay_s = max(1, text_index_rows), text_index_delay_s
        # The trigram index is most of the cost of a write (bench/RESULTS.md): write-heavy stores that
        # turn indexes off skip it too, and `contains` then scans (still exact, slower on big stores).
        self.text_index = enable_indexes if text_index is None else text_index
        self._fts = False  # the database has the text index (searches use it, even when not kept up)
        self._remote: WriterProcess | None = None  # commits made by a child process (use_writer_process)
        self._size_seen: tuple[float, int] = (float("-inf"), 0)  # (monotonic time, size_bytes()): _recent_size

    # -- lifecycle -------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the parent directory, migrate to the head version and open the writer connection."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.where()} was shut down")
            if self._engine is not None:
                return
            if self.path is not None:
                from ...privacy.files import create_private_database
                from .dialect import check_sqlite_file

                create_private_database(self.path)  # owner-only: 0700 new directories, 0600 the file

                check_sqlite_file(self.path)
            # Reads pass the reader gate, which a fork drains (fork.py): outside the lock, but never forked inside.
            engine = gate_reads(self.sql.make_engine(self.url, busy_timeout_ms=self.busy_timeout_ms, wal=self.wal,
                                                     pool=self.pool))
            try:
                migrated = migrate.upgrade(engine)
                with engine.begin() as conn:  # the current partition at once; upkeep() makes those ahead
                    self.sql.upkeep(conn, self.partition_ms, now_ms(), 0)
                with engine.begin() as conn:
                    for index in EVENT_INDEXES:
                        (index.create if self.enable_indexes else index.drop)(conn, checkfirst=True)
                    self._fts = self.sql.has_text_index(conn)
                if migrated:  # new or changed indexes: statistics for them now, not at the first upkeep
                    self.sql.refresh_statistics(engine, self._lock)
                self._writer = self._open_writer(engine)
                if self.encryption is not None:
                    self.encryption.open(engine)
            except StoreError:  # a database this code does not recognise (store/migrate.py): refused as it is
                engine.dispose()
                raise
            except sa_exc.DBAPIError as exc:  # also ProgrammingError: a role without CREATE privilege
                engine.dispose()
                reason = str(exc.orig).strip().splitlines()[0]
                kind = TransientStoreError if self.sql.is_transient(exc.orig or exc) else StoreError
                raise kind(f"cannot open {self.where()}: {reason}") from exc
            self._text = TextIndex(self.text_index_rows, self.text_index_delay_s,
                                   kept=self.text_index) if self._fts else None
            # Its own totals rows on PostgreSQL (totals_deltas): new after a fork, as initialize() runs again.
            writer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self._statements = Statements(self.sql, writer_id)
            self._engine = engine
            LIVE.add(self)

    def where(self) -> str:
        """The database file, or the URL without its password: for messages."""
        return self.path or make_url(self.url).render_as_string(hide_password=True)

    def _open_writer(self, engine: Engine) -> Any:
        conn = engine.raw_connection()
        self.sql.prepare_writer(conn)
        return conn

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine reads use (initialising the store on first use)."""
        if self._engine is None:
            self.initialize()
        assert self._engine is not None
        return self._engine

    def _drop_writer(self) -> None:
        conn, self._writer = self._writer, None
        with contextlib.suppress(Exception):  # it is already broken; nothing more to release
            conn.invalidate()

    def after_fork(self) -> None:
        """In a forked child: new lock, disown the parent's connections without closing them; reopen lazily.

        The lock is replaced, never acquired: another thread of the parent may have held it at the
        fork, and no thread in the child will ever release that copy. Closing the connections would
        act on the parent's sockets (a PostgreSQL Terminate ends its session), so they are kept
        referenced and never used again.
        """
        self._lock = threading.RLock()
        DISOWNED.extend(c for c in (self._writer, self._engine) if c is not None)
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._writer, self._engine, self._text = None, None, None
        if self._remote is not None:
            self._remote.after_fork()

    # -- writes ----------------------------------------------------------------------------------

    def store(self, event: TelemetryEvent) -> BatchResult:
        """Store one event."""
        return self.store_batch([event])

    def store_batch(self, events_: Sequence[TelemetryEvent]) -> BatchResult:
        """Store a batch in one transaction: duplicates skipped, sessions and rollups updated.

        Raises TransientStoreError (a lock or busy database, a lost connection: retry later) or
        RefusedRowError (a value or constraint the database refuses: the batch holds a bad row),
        each with the database's own error as __cause__; nothing of the batch is stored then.
        """
        if not events_:
            return BatchResult()
        self.engine  # noqa: B018 - initialise on first use
        remote = self._remote
        if remote is not None:
            return self._store_remote(remote, events_)
        with self._lock:
            integrity_error = self._engine.dialect.dbapi.IntegrityError  # type: ignore[union-attr]
            try:
                try:
                    result = self._write(events_, check_ids=self.sql.lookup_ids_first)
                except integrity_error:
                    # A replayed event id (rare): look the batch's ids up and skip those stored.
                    result = self._write(events_, check_ids=True)
            except Exception as exc:
                typed = self._typed(exc, integrity_error)
                if typed is exc:
                    raise
                raise typed from exc
            # The text index catches up behind the writer, never inside a write: Telemetry's scheduler
            # calls index_text() every second (runtime.py); flush() and `telemetry reindex` do too.
            return result

    def _typed(self, exc: Exception, integrity_error: type[BaseException]) -> Exception:
        """The typed error for a failed write (the original itself when it is neither kind)."""
        if self.sql.is_disk_full(getattr(exc, "orig", None) or exc):
            return DiskFullError(f"{self.name} store {self.where()}: disk full ({exc})")
        if self.sql.is_transient(exc):
            return TransientStoreError(f"{self.name} store {self.where()}: {exc}")
        if self.sql.is_refused(exc, integrity_error):
            return StoreRefusedRow(f"{self.name} store refused the rows ({type(exc).__name__}: {exc})")
        return exc

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """The writer's cursor in one transaction (the caller holds the lock)."""
        if self._writer is None and not self._closed and self._engine is not None:
            self._writer = self._open_writer(self._engine)  # replaces one a dropped connection killed
        conn = self._writer
        if conn is None:
            raise StoreError(f"store {self.where()} was shut down")
        cur = conn.cursor()
        try:
            with self.sql.write_scope(conn):
                self.sql.begin(cur)
                try:
                    yield cur
                except BaseException:
                    try:
                        self.sql.rollback(conn, cur)
                    except Exception:
                        if not self.sql.connection_lost(conn):
                            raise
                    raise
                self.sql.commit(conn, cur)  # PostgreSQL rolls back itself when it fails (its pipeline)
        except BaseException:
            if self.sql.connection_lost(conn):
                # A PostgreSQL restart, failover or idle timeout: drop this connection so the retry
                # of the batch (the pipeline's) opens a fresh one instead of failing forever.
                self._drop_writer()
            raise
        finally:
            cur.close()

    def _write(self, batch: Sequence[TelemetryEvent], *, check_ids: bool) -> BatchResult:
        with self._transaction() as cur:
            if self.encryption is not None:  # the bytes at rest only: callers keep their plaintext events
                batch = self.encryption.encrypt_batch(batch)
            return write(cur, self._statements, batch, check_ids=check_ids, text=self._text)

    @contextmanager
    def maintenance_transaction(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, serialised with the writer thread."""
        with self._lock, self.engine.connect() as conn, self.sql.for_writing(conn).begin():
            self.sql.begin_maintenance(conn)
            yield conn

    # -- maintenance (store/sql/maintenance.py); the change log and the audit trail are the mixins of
    # store/sql/changelog.py and store/sql/audit.py, schema versions and ad-hoc SQL of store/sql/direct.py.

    def clean(self, *, older_than_ms: int | None = None, session_ids: Sequence[str] = (),
              categories: Sequence[str] = ()) -> int:
        """Delete events matching every given criterion (all events when none is given).

        older_than_ms is a cutoff in epoch ms, or an age in ms when below 1e11 (e.g. 30 days).
        Sessions left without events go too, and the totals and rollups are corrected.
        """
        return maintenance.clean(self, older_than_ms=older_than_ms, session_ids=session_ids,
                                 categories=categories)

    def prune(self) -> int:
        """Apply prune_days and max_size_mb: delete the oldest events, then VACUUM; return the count."""
        return maintenance.prune(self)

    def upkeep(self, now: int | None = None) -> list[str]:
        """Scheduled upkeep: planner statistics kept fresh (SQLite); PostgreSQL: partitions ahead, totals folded.

        Return the events partitions created.
        """
        from .partitions import AHEAD

        # Under the store's lock, like every write: a fork waits for it (fork.py). SQLite's own global
        # mutexes are held inside its calls; a child forked while this scheduler thread was in one
        # would hang on its first SQLite call (it did: test_chain's fork test, child 17 ≈ 1 s in).
        with self._lock:
            with self.engine.begin() as conn:
                created = self.sql.upkeep(conn, self.partition_ms, now_ms() if now is None else now, AHEAD)
            self.refresh_statistics()
        return created

    def refresh_statistics(self, *, every_table: bool = False) -> list[str]:
        """Gather planner statistics of the tables that lack them or have doubled or halved since (SQLite).

        ANALYZE is bounded (store/sql/dialect_sqlite.py ANALYSIS_LIMIT) and the write lock taken only when
        a table is due. every_table: all of them (after VACUUM). Return the tables analyzed.
        """
        with self._lock, self._typed_errors():  # its reads too: a fork must not land inside them
            return self.sql.refresh_statistics(self.engine, self._lock, every_table=every_table)

    def compact(self) -> None:
        """VACUUM: give the space of deleted rows back to the file system."""
        self.engine  # noqa: B018
        with self._lock, self._typed_errors():
            maintenance.compact(self)
        self.refresh_statistics(every_table=True)  # `telemetry vacuum`: statistics as fresh as the file

    def reindex(self) -> None:
        """Rebuild every index (and the text index)."""
        self.engine  # noqa: B018
        with self._lock, self._typed_errors():
            maintenance.reindex(self)

    @contextmanager
    def _typed_errors(self) -> Iterator[None]:
        """The driver's errors on the writer connection as StoreErrors (TransientStoreError: locked, busy)."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            dbapi = self._engine.dialect.dbapi if self._engine is not None else None
            if dbapi is None or not isinstance(exc, dbapi.Error):
                raise
            kind = TransientStoreError if self.sql.is_transient(exc) else StoreError
            raise kind(f"{self.name} store {self.where()}: {' '.join(str(exc).split())}") from exc

    def check(self) -> list[str]:
        """Run integrity checks; return the problems found ([] when the database is sound)."""
        return maintenance.check(self)

    # -- reads -----------------------------------------------------------------------------------

    def query(self, filter_: QueryFilter) -> list[TelemetryEvent]:
        """Return the events matching the filter, ordered by (timestamp, event_id)."""
        with self.engine.connect() as conn:
            return read.query_events(conn, filter_, self.sql, self._fts)

    def iter_events(self, filter_: QueryFilter, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        """Yield the matching events in the filter's order, chunk_size rows per query (keyset pages)."""
        return read.iter_events(self.engine, filter_, self.sql, self._fts, chunk_size)

    def iter_rows(self, filter_: QueryFilter, columns: Sequence[str] | None = None,
                  chunk_size: int = 1000) -> Iterator[list[tuple[Any, ...]]]:
        """Yield the matching events as pages of raw rows in `columns` order (exports' fast path)."""
        return read_rows.iter_rows(self.engine, filter_, self.sql, self._fts, columns, chunk_size)

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session, with its events in time order when asked."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
            if row is None:
                return None
            session = read.row_to_session(row)
            if with_events:
                session.events = read.query_events(conn, QueryFilter(session_ids=[session_id]), self.sql, self._fts)
        return session

    def get_sessions(self, filter_: SessionFilter) -> list[Session]:
        """Return the sessions matching the filter."""
        with self.engine.connect() as conn:
            return read.query_sessions(conn, filter_, self.sql)

    def longest_sessions(self, filter_: SessionFilter, limit: int = 10) -> list[Session]:
        """Return the finished sessions matching the filter, longest duration first."""
        with self.engine.connect() as conn:
            return read.longest_sessions(conn, filter_, limit)

    def rollup_series(self, period: str, since: int, until: int,
                      categories: Sequence[str] = ()) -> list[RollupPoint]:
        """Return the `period` rollup buckets starting in [since, until] per category and event type."""
        check_series_args(period, since, until)
        with self.engine.connect() as conn:
            return read_stats.rollup_series(conn, period, since, until, list(categories))

    def error_groups(self, filter_: QueryFilter, by: str = "label", limit: int | None = None) -> list[ErrorGroup]:
        """Return the error events matching the filter grouped by `by`, most frequent first."""
        with self.engine.connect() as conn:
            return read.error_groups(conn, filter_, self.sql, self._fts, by, limit)

    def existing_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Return which of these event ids are stored (primary-key lookups, in chunks)."""
        found: set[str] = set()
        # event_ids on PostgreSQL: one index probe per id, not one per partition.
        ids = sa_table(self.sql.ids_table, sa_column("event_id"))
        with self.engine.connect() as conn:
            for chunk in chunks(list(event_ids)):
                found.update(conn.execute(select(ids.c.event_id).where(ids.c.event_id.in_(chunk))).scalars())
        return found

    def existing_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Return which of these session ids the store holds."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(list(session_ids)):
                found.update(conn.execute(select(sessions.c.id).where(sessions.c.id.in_(chunk))).scalars())
        return found

    def get_stats(self, filter_: StatsFilter) -> Stats:
        """Return totals, agents, date range, size, average duration and the requested breakdown."""
        size = self._recent_size()  # before the checkout below: one pooled connection at a time, not two
        with self.engine.connect() as conn:
            return read_stats.stats(conn, filter_, size, self.sql.totals_source())

    def size_bytes(self) -> int:
        """Return the bytes the store occupies (SQLite file and WAL; PostgreSQL tables and indexes)."""
        return self.sql.size_bytes(self.engine if self.path is None else None, self.path)

    def _recent_size(self) -> int:
        """size_bytes(), reused for up to the dialect's size_max_age_s (stats and health poll it)."""
        at, size = self._size_seen
        if time.monotonic() - at >= self.sql.size_max_age_s:
            size = self.size_bytes()
            self._size_seen = (time.monotonic(), size)  # one tuple: threads see a whole pair
        return size

    def health(self) -> dict[str, Any]:
        """Return reachability, schema version, size and counts (from session_totals, no scan)."""
        try:
            with self.engine.connect() as conn:
                totals = self.sql.totals_source().c
                n_events, n_sessions = conn.execute(select(
                    func.coalesce(func.sum(totals.events), 0), func.coalesce(func.sum(totals.sessions), 0))).one()
            return {"reachable": True, "name": self.name, "backend": self.dialect, "location": self.where(),
                    "schema_version": migrate.current_version(self.engine), "events": int(n_events),
                    "sessions": int(n_sessions), "size_bytes": self._recent_size(),
                    "text_search": self._fts or self.sql.native_text_search}
        except Exception as exc:  # health reports failures, it never raises them
            return {"reachable": False, "name": self.name, "backend": self.dialect, "location": self.where(),
                    "error": str(exc)}
