"""SQLStore: the SQLite / PostgreSQL store. Core selects for reads, a compiled DBAPI fast path for writes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    Text,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

from ..errors import StoreError
from ..events import TelemetryEvent, now_ms
from ..query import QueryFilter, SessionFilter, StatsFilter
from . import _sql_read as reads
from . import changelog, dialects, migrate
from ._batch import (
    WRITER_RUN_COLUMNS,
    KnownSession,
    Plan,
    SessionState,
    TotalsDelta,
    add_session_buckets,
    add_session_state,
    plan_batch,
    resolve_older_than,
    writer_run_row,
)
from .base import BatchResult, Session, Stats
from .schema import (
    EVENT_COLUMNS,
    EVENT_INDEXES,
    FTS_WATERMARK,
    ROLLUP_PERIODS,
    audit_log,
    events,
    rollups,
    session_rollups,
    session_totals,
    sessions,
    writer_runs,
)

_CHUNK: Final = 500
# Connections inherited across fork, kept referenced so they are never finalised (closed) in the child.
_DISOWNED: list[Any] = []


def _connection_lost(conn: Any) -> bool:
    """Return whether a writer connection can no longer be used (PostgreSQL: closed or broken)."""
    dbapi = getattr(conn, "dbapi_connection", conn)
    return bool(getattr(dbapi, "closed", False) or getattr(dbapi, "broken", False))
  # ids per IN (...) list: well under SQLite's 32766 host-parameter limit
WRITER_CACHE_KB: Final = 8000
_TOTAL_COLUMNS: Final = ("events", "error_events", "sessions", "active_sessions", "ended_sessions",
                         "duration_sum", "duration_count")
_SESSION_COLUMNS: Final = _TOTAL_COLUMNS[2:]  # the counters session_rollups keeps per start-time bucket
# Text indexing (SQLite FTS5): the store inserts events unindexed and indexes them in bulk afterwards.
_WATERMARK_SQL: Final = "SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid'"
_SET_WATERMARK: Final = ("INSERT INTO store_meta (key, value) VALUES ('fts_indexed_rowid', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
_INDEX_RANGE: Final = ("INSERT INTO events_fts(rowid, label, stream_data) SELECT rowid, label, stream_data "
                       "FROM events WHERE rowid > ? AND rowid <= ? "
                       "AND (label IS NOT NULL OR stream_data IS NOT NULL)")


class SQLStore:
    """Events, sessions, rollups and the audit log in SQLite (a path or sqlite:/// URL) or PostgreSQL.

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
    """

    supports_query = True

    def __init__(self, url_or_path: str | os.PathLike[str], *, enable_indexes: bool = True,
                 busy_timeout_ms: int = 5000, prune_days: float | None = None,
                 max_size_mb: float | None = None, wal: bool = True, text_index: bool | None = None,
                 text_index_rows: int = 20_000, text_index_delay_s: float = 2.0) -> None:
        self.url = dialects.to_url(url_or_path)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect not in (dialects.SQLITE, dialects.POSTGRESQL):
            raise StoreError(f"unsupported database URL {make_url(self.url)!r}: "
                             "expected sqlite or postgresql")
        self.name = self.dialect
        self.path = dialects.sqlite_path(self.url)
        self.enable_indexes, self.busy_timeout_ms, self.wal = enable_indexes, busy_timeout_ms, wal
        self.prune_days, self.max_size_mb = prune_days, max_size_mb
        self._engine: Engine | None = None
        self._writer: Any = None
        # The writer connection is used by one thread at a time: the service's writer thread, or
        # maintenance (clean, prune, compact) called from another thread.
        self._lock = threading.RLock()
        self._fts = False
        self._closed = False
        self.text_index_rows, self.text_index_delay_s = max(1, text_index_rows), text_index_delay_s
        # The trigram index is most of the cost of a write (bench/RESULTS.md): write-heavy stores that
        # turn indexes off skip it too, and `contains` then scans (still exact, slower on big stores).
        self.text_index = enable_indexes if text_index is None else text_index
        self._unindexed = 0  # rows above the watermark, as of the last write
        self._unindexed_since: float | None = None  # monotonic time the oldest of them was written

    # -- lifecycle -------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the parent directory, migrate to the head version and open the writer connection."""
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._where()} was shut down")
            if self._engine is not None:
                return
            if self.path is not None:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                dialects.check_sqlite_file(self.path)
            engine = dialects.make_engine(self.url, busy_timeout_ms=self.busy_timeout_ms, wal=self.wal)
            try:
                migrate.upgrade(engine)
                with engine.begin() as conn:
                    for index in EVENT_INDEXES:
                        (index.create if self.enable_indexes else index.drop)(conn, checkfirst=True)
                    self._fts = self.dialect == dialects.SQLITE and conn.exec_driver_sql(
                        "SELECT 1 FROM sqlite_master WHERE name = 'events_fts'").first() is not None
                self._writer = self._open_writer(engine)
            except sa_exc.OperationalError as exc:
                engine.dispose()
                reason = str(exc.orig).strip().splitlines()[0]
                raise StoreError(f"cannot open {self._where()}: {reason}") from exc
            self._statements = _Statements(self.dialect)
            self._engine = engine

    def _where(self) -> str:
        return self.path or make_url(self.url).render_as_string(hide_password=True)

    def _open_writer(self, engine: Engine) -> Any:
        if self.path is None or self.dialect != dialects.SQLITE:
            raw = engine.raw_connection()
            return raw
        import sqlite3

        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=self.busy_timeout_ms / 1000)
        dialects.apply_sqlite_pragmas(conn, self.busy_timeout_ms, self.wal)
        # 8 MB of page cache holds the hot index pages of a growing table while ingesting (measured as
        # fast as 32 MB with 1M events, at 24 MB less resident memory).
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")
        # The writer sorts nothing big; its temporary storage is statement journals, mostly of the bulk
        # text-index inserts (FTS5 segment merges). In memory they peaked at ~50 MB while ingesting 1M
        # events (sqlite3_memory_highwater); in a temp file (spilled past 64 KB, kept in the OS cache)
        # peak RSS went from 130 to 94 MB at 2-3 % of ingest rate, within this machine's noise.
        conn.execute("PRAGMA temp_store = FILE")
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
        try:
            invalidate = getattr(conn, "invalidate", None)
            invalidate() if callable(invalidate) else conn.close()
        except Exception:  # it is already broken; nothing more to release
            pass

    def after_fork(self) -> None:
        """In a forked child: disown the parent's connections without closing them, and retire this store.

        Closing them would act on the parent's sockets (a PostgreSQL Terminate ends its session); the
        service opens a new store in the child instead.
        """
        with self._lock:
            _DISOWNED.extend(c for c in (self._writer, self._engine) if c is not None)
            if self._engine is not None:
                self._engine.dispose(close=False)
            self._writer, self._engine, self._closed = None, None, True

    def shutdown(self) -> None:
        """Close the writer and the engine; safe to call twice."""
        with self._lock:
            self._closed = True
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def flush(self) -> None:
        """Bring the text index up to date and checkpoint the SQLite WAL; PostgreSQL is already durable."""
        with self._lock:
            if self._writer is not None and self.dialect == dialects.SQLITE:
                self.index_text()
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- deferred text indexing (SQLite FTS5) ----------------------------------------------------

    def index_text(self, max_rows: int | None = None) -> int:
        """Add the events stored since the last call to the text index; return how many rowids it covered.

        Works in transactions of at most `text_index_rows` rows, so a concurrent reader or writer
        waits for one chunk at most. max_rows bounds the work of this call (None: everything).
        """
        if self.dialect != dialects.SQLITE:
            return 0
        self.engine  # noqa: B018
        done = 0
        with self._lock:
            if not self._fts or not self.text_index:
                return 0
            while max_rows is None or done < max_rows:
                step = self.text_index_rows if max_rows is None else min(self.text_index_rows, max_rows - done)
                covered, left = self._index_chunk(step)
                done += covered
                if not left:
                    break
        return done

    def _index_chunk(self, max_rows: int) -> tuple[int, int]:
        """Index up to max_rows rowids above the watermark in one transaction: (covered, still left)."""
        with self._transaction() as cur:
            mark, top = self._watermark(cur)
            upto = min(top, mark + max_rows)
            if upto > mark:
                cur.execute(_INDEX_RANGE, (mark, upto))
                cur.execute(_SET_WATERMARK, (upto,))
        self._unindexed = top - upto
        if not self._unindexed:
            self._unindexed_since = None
        return upto - mark, top - upto

    @staticmethod
    def _watermark(cur: Any) -> tuple[int, int]:
        """(watermark, max rowid) inside a write transaction, lowering the watermark past deleted rows.

        Rowids are max(rowid) + 1: when the newest rows were deleted, new rows would reuse rowids at or
        below the watermark and never be indexed, so the watermark follows max(rowid) down.
        """
        cur.execute(f"SELECT ({_WATERMARK_SQL}), (SELECT COALESCE(MAX(rowid), 0) FROM events)")
        mark, top = cur.fetchone()
        if mark is None or top < mark:
            mark = min(top, mark or 0)
            cur.execute(_SET_WATERMARK, (mark,))
        return int(mark), int(top)

    def _catch_up_text(self, written: int) -> None:
        """After a write: index one chunk when enough rows wait, or the oldest has waited long enough.

        A chunk is text_index_rows, or the batch just written when that is bigger, so the index keeps
        up with any batch size while each call's extra work stays bounded by one chunk.
        """
        if not self._unindexed or not self.text_index:
            return
        since = self._unindexed_since
        if self._unindexed >= self.text_index_rows or (
                since is not None and time.monotonic() - since >= self.text_index_delay_s):
            self._index_chunk(max(self.text_index_rows, written))

    # -- writer metrics --------------------------------------------------------------------------

    def record_writer_run(self, run: dict[str, Any]) -> None:
        """Insert or update one writer's metrics row (keyed by run_id), in its own short transaction.

        Missing counters are stored as 0, a missing updated_at as now and started_at as updated_at;
        started_at is kept from the first record of the run.
        """
        row = writer_run_row(run)
        self.engine  # noqa: B018 - initialise on first use
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self._where()} was shut down")
            st = self._statements
            with self._transaction() as cur:
                cur.execute(st.upsert_run, tuple(row[n[2:]] for n in st._run_names))

    def writer_runs(self, since_ms: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the writers' metrics rows updated at or after since_ms, the most recently updated first."""
        w = writer_runs.c
        stmt = select(writer_runs).order_by(w.updated_at.desc(), w.run_id.desc()).limit(limit)
        if since_ms is not None:
            stmt = stmt.where(w.updated_at >= since_ms)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    # -- writes ----------------------------------------------------------------------------------

    def store(self, event: TelemetryEvent) -> BatchResult:
        """Store one event."""
        return self.store_batch([event])

    def store_batch(self, events_: Sequence[TelemetryEvent]) -> BatchResult:
        """Store a batch in one transaction: duplicates skipped, sessions and rollups updated."""
        if not events_:
            return BatchResult()
        self.engine  # noqa: B018 - initialise on first use
        with self._lock:
            integrity_error = self._engine.dialect.dbapi.IntegrityError  # type: ignore[union-attr]
            try:
                # SQLite: optimistic, replays are rare, so ids are looked up only when the insert says so.
                # PostgreSQL: look up first; a failed executemany aborts psycopg's pipeline noisily.
                result = self._write(events_, check_ids=self.dialect != dialects.SQLITE)
            except integrity_error:
                result = self._write(events_, check_ids=True)
            if self._fts:
                self._catch_up_text(result.stored)
            return result

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self._writer is None and not self._closed and self._engine is not None:
            self._writer = self._open_writer(self._engine)  # replaces one a dropped connection killed
        conn = self._writer
        cur = conn.cursor()
        if self.dialect == dialects.SQLITE:
            # IMMEDIATE takes the write lock up front, so the session lookups below see what we update.
            cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            try:
                conn.rollback() if self.dialect != dialects.SQLITE else cur.execute("ROLLBACK")
            except Exception:
                if not _connection_lost(conn):
                    raise
            if _connection_lost(conn):
                # A PostgreSQL restart, failover or idle timeout: drop this connection so the retry
                # of the batch (the pipeline's) opens a fresh one instead of failing forever.
                self._drop_writer()
            raise
        else:
            conn.commit() if self.dialect != dialects.SQLITE else cur.execute("COMMIT")
        finally:
            cur.close()

    def _write(self, batch: Sequence[TelemetryEvent], *, check_ids: bool) -> BatchResult:
        st = self._statements
        with self._transaction() as cur:
            # Before inserting, so new rows never take rowids at or below a stale watermark.
            mark = self._watermark(cur)[0] if self._fts else None
            sids = list({s for e in batch if (s := e.session_id) is not None})
            known: dict[str, KnownSession] = {}
            for chunk in _chunks(sids):
                cur.execute(st.known_sessions(len(chunk)), chunk)
                known.update((row[0], KnownSession(*row[1:])) for row in cur.fetchall())
            stored: set[str] = set()
            if check_ids:
                for chunk in _chunks([e.event_id for e in batch if e.event_id]):
                    cur.execute(st.stored_ids(len(chunk)), chunk)
                    stored.update(row[0] for row in cur.fetchall())
            plan = plan_batch(batch, known, stored)
            new = [d for d in plan.sessions.values() if d.new]
            if new:
                cur.executemany(st.insert_session, [st.session_row(d) for d in new])
            if plan.events:
                cur.executemany(st.insert_events, plan.event_rows())
            old = [d for d in plan.sessions.values() if not d.new]
            if old:
                cur.executemany(st.update_session, [st.update_row(d) for d in old])
            if plan.rollups:
                cur.executemany(st.upsert_rollup, st.rollup_rows(plan))
            if plan.totals:
                cur.executemany(st.upsert_totals, st.totals_rows(plan.totals))
            if plan.session_rollups:
                cur.executemany(st.upsert_session_rollup, st.session_rollup_rows(plan.session_rollups))
            if mark is not None:
                cur.execute("SELECT COALESCE(MAX(rowid), 0) FROM events")
                self._unindexed = cur.fetchone()[0] - mark
                if self._unindexed and self._unindexed_since is None:
                    self._unindexed_since = time.monotonic()
        return plan.result

    @contextmanager
    def _maintenance(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, serialised with the writer thread."""
        with self._lock, self.engine.connect() as conn:
            if self.dialect == dialects.SQLITE:
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    def clean(self, *, older_than_ms: int | None = None, session_ids: Sequence[str] = (),
              categories: Sequence[str] = ()) -> int:
        """Delete events matching every given criterion (all events when none is given).

        older_than_ms is a cutoff in epoch ms, or an age in ms when below 1e11 (e.g. 30 days).
        Sessions left without events go too. Counts, errors and duration sums in the rollups are
        corrected; their per-bucket min and max are not (they stay as bounds of what arrived).
        """
        e, r = events.c, rollups.c
        cutoff = resolve_older_than(older_than_ms)
        where: list[ColumnElement[bool]] = [true()]
        if cutoff is not None:
            where.append(e.timestamp < cutoff)
        if session_ids:
            where.append(e.session_id.in_(list(session_ids)))
        if categories:
            where.append(e.category.in_(list(categories)))
        with self._maintenance() as conn:
            touched = list(conn.execute(select(e.session_id).distinct().where(
                *where, e.session_id.is_not(None))).scalars())
            # One grouped read at minute resolution, summed up here into every period and the totals.
            minute = ROLLUP_PERIODS["minute"]
            per_bucket: dict[tuple[str, int, str, str, str], list[Any]] = {}
            totals: dict[str, TotalsDelta] = {}
            buckets: dict[tuple[str, int, str], TotalsDelta] = {}
            keys = ((e.timestamp // minute) * minute, e.category, func.coalesce(e.action, ""), e.event_type)
            for start, cat, act, kind, n, errs, dsum, dcount in conn.execute(select(
                    *keys, func.count(), func.sum(case((e.event_type == "error", 1), else_=0)),
                    func.coalesce(func.sum(e.duration), 0.0), func.count(e.duration))
                    .where(*where).group_by(*keys)):
                cat = cat or ""
                for period, size in ROLLUP_PERIODS.items():
                    acc = per_bucket.setdefault((period, int(start) // size * size, cat, act, kind), [0, 0, 0.0, 0])
                    acc[0] += n
                    acc[1] += errs or 0
                    acc[2] += dsum or 0.0
                    acc[3] += dcount
                t = totals.setdefault(cat, TotalsDelta())
                t.events -= n
                t.error_events -= errs or 0
            if per_bucket:
                conn.execute(update(rollups).where(
                    r.period == bindparam("b_period"), r.bucket_start == bindparam("b_start"),
                    r.category == bindparam("b_category"), r.action == bindparam("b_action"),
                    r.event_type == bindparam("b_kind")).values(
                    count=r.count - bindparam("b_n"), error_count=r.error_count - bindparam("b_errs"),
                    duration_sum=r.duration_sum - bindparam("b_dsum"),
                    duration_count=r.duration_count - bindparam("b_dcount")),
                    [{"b_period": k[0], "b_start": k[1], "b_category": k[2], "b_action": k[3], "b_kind": k[4],
                      "b_n": v[0], "b_errs": v[1], "b_dsum": v[2], "b_dcount": v[3]} for k, v in per_bucket.items()])
            removed = conn.execute(delete(events).where(*where)).rowcount
            conn.execute(delete(rollups).where(r.count <= 0))
            sc = sessions.c
            for chunk in _chunks(touched):
                empty = [sc.id.in_(chunk), ~exists().where(e.session_id == sc.id)]
                for cat, status, end_time, duration, start_time in conn.execute(
                        select(sc.category, sc.status, sc.end_time, sc.duration, sc.start_time).where(*empty)):
                    state: SessionState = (cat, status, end_time, duration)
                    add_session_state(totals, state, -1)
                    add_session_buckets(buckets, state, int(start_time), -1)
                conn.execute(delete(sessions).where(*empty))
            self._apply_totals(conn, totals)
            self._apply_session_rollups(conn, buckets)
            if self._fts:
                # Deleting the newest rows frees their rowids for reuse: keep the watermark at most
                # max(rowid), so rows that take those rowids again are indexed.
                conn.exec_driver_sql(
                    "UPDATE store_meta SET value = (SELECT COALESCE(MAX(rowid), 0) FROM events) "
                    f"WHERE key = '{FTS_WATERMARK}' AND value > (SELECT COALESCE(MAX(rowid), 0) FROM events)")
            changelog.clamp_cursors(conn)  # the same for exporters' cursors
        return int(removed)

    @staticmethod
    def _apply_totals(conn: Connection, totals: dict[str, TotalsDelta]) -> None:
        """Add (negative) deltas to session_totals rows that exist; drop rows left at zero."""
        rows = [{"b_category": cat, **{"b_" + c: getattr(v, c) for c in _TOTAL_COLUMNS}}
                for cat, v in totals.items() if not v.is_zero()]
        if not rows:
            return
        t = session_totals.c
        conn.execute(update(session_totals).where(t.category == bindparam("b_category")).values(
            {c: t[c] + bindparam("b_" + c) for c in _TOTAL_COLUMNS}), rows)
        conn.execute(delete(session_totals).where(t.events <= 0, t.sessions <= 0))

    @staticmethod
    def _apply_session_rollups(conn: Connection, buckets: dict[tuple[str, int, str], TotalsDelta]) -> None:
        """Add (negative) deltas to session_rollups buckets; drop buckets left without sessions."""
        rows = [{"b_period": p, "b_start": b, "b_category": cat, **{"b_" + c: getattr(v, c) for c in _SESSION_COLUMNS}}
                for (p, b, cat), v in buckets.items() if not v.is_zero()]
        if not rows:
            return
        r = session_rollups.c
        conn.execute(update(session_rollups).where(
            r.period == bindparam("b_period"), r.bucket_start == bindparam("b_start"),
            r.category == bindparam("b_category")).values(
            {c: r[c] + bindparam("b_" + c) for c in _SESSION_COLUMNS}), rows)
        conn.execute(delete(session_rollups).where(r.sessions <= 0))

    def prune(self) -> int:
        """Apply prune_days and max_size_mb: delete the oldest events, then VACUUM; return the count."""
        removed = 0
        if self.prune_days is not None:
            cutoff = now_ms() - int(self.prune_days * 86_400_000)
            removed += self.clean(older_than_ms=cutoff)
            with self._maintenance() as conn:
                conn.execute(delete(writer_runs).where(writer_runs.c.updated_at < cutoff))
        if self.max_size_mb is None:
            return removed
        limit = int(self.max_size_mb * 1024 * 1024)
        # Aim 10 % under the limit so the next batches do not trigger another prune at once.
        target = int(0.9 * limit)
        for _ in range(10):
            if self.size_bytes() <= limit:
                break
            used = self._used_bytes()
            if used > target:
                with self.engine.connect() as conn:
                    total = conn.execute(select(func.count()).select_from(events)).scalar_one()
                    if not total:
                        break
                    n = max(1, min(total, int(total * (used - target) / used) + 1))
                    cutoff = conn.execute(select(events.c.timestamp).order_by(events.c.timestamp)
                                          .offset(n - 1).limit(1)).scalar_one()
                removed += self.clean(older_than_ms=cutoff + 1)
            self.compact()
            if self.dialect != dialects.SQLITE:
                break  # PostgreSQL files do not shrink without VACUUM FULL: one pass by row share
        return removed

    def compact(self) -> None:
        """VACUUM: give the space of deleted rows back to the file system."""
        self.engine  # noqa: B018
        with self._lock:
            if self.dialect == dialects.SQLITE:
                # VACUUM may renumber the implicit rowids the FTS index points at, so the index is
                # emptied first (its pages are then reclaimed too; searches scan meanwhile, the
                # watermark being 0) and rebuilt afterwards, the watermark moving with it.
                if self._fts:
                    with self._transaction() as cur:
                        cur.execute("INSERT INTO events_fts(events_fts) VALUES ('delete-all')")
                        cur.execute(_SET_WATERMARK, (0,))
                self._writer.execute("VACUUM")
                if self._fts:
                    self._rebuild_text_index()
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE events, sessions, rollups")

    def _rebuild_text_index(self) -> None:
        """Rebuild the FTS index from every events row and set the watermark to the newest (one transaction)."""
        with self._transaction() as cur:
            cur.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
            cur.execute("SELECT COALESCE(MAX(rowid), 0) FROM events")
            cur.execute(_SET_WATERMARK, (cur.fetchone()[0],))
        self._unindexed, self._unindexed_since = 0, None

    def reindex(self) -> None:
        """Rebuild every index (and the FTS index)."""
        if self.dialect == dialects.SQLITE:
            self.engine  # noqa: B018
            with self._lock:
                self._writer.execute("REINDEX")
                if self._fts:
                    self._rebuild_text_index()
            return
        with self._maintenance() as conn:
            for table in ("events", "sessions", "rollups", "session_totals", "session_rollups", "audit_log"):
                conn.exec_driver_sql(f"REINDEX TABLE {table}")

    def record_audit(self, actor: str, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None) -> None:
        """Append one audit entry: who did what to what, when."""
        with self._maintenance() as conn:
            conn.execute(insert(audit_log).values(
                timestamp=now_ms(), actor=actor, action=action, target=target,
                details=json.dumps(details, default=str) if details is not None else None))

    # -- change log: what exporters follow (store/changelog.py) ---------------------------------

    def committed_position(self) -> int:
        """Return the position of the newest committed event (0 when there is none)."""
        return changelog.committed_position(self.engine)

    def read_committed(self, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` committed events with position > after, oldest first, with their positions."""
        return changelog.read_committed(self.engine, after, limit)

    def load_cursor(self, name: str) -> int | None:
        """Return exporter `name`'s persisted position, or None."""
        return changelog.load_cursor(self.engine, name)

    def save_cursor(self, name: str, position: int) -> None:
        """Persist exporter `name`'s position."""
        changelog.save_cursor(self.engine, name, position)

    def cursors(self) -> dict[str, int]:
        """Return every persisted exporter position by name."""
        return changelog.cursors(self.engine)

    # -- reads -----------------------------------------------------------------------------------

    def query(self, filter_: QueryFilter) -> list[TelemetryEvent]:
        """Return the events matching the filter, ordered by (timestamp, event_id)."""
        with self.engine.connect() as conn:
            return reads.query_events(conn, filter_, self.dialect, self._fts)

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session, with its events in time order when asked."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
            if row is None:
                return None
            session = reads.row_to_session(row)
            if with_events:
                session.events = reads.query_events(conn, QueryFilter(session_ids=[session_id]),
                                                    self.dialect, self._fts)
        return session

    def get_sessions(self, filter_: SessionFilter) -> list[Session]:
        """Return the sessions matching the filter."""
        with self.engine.connect() as conn:
            return reads.query_sessions(conn, filter_)

    def existing_sessions(self, session_ids: Sequence[str]) -> set[str]:
        """Return which of these session ids the store holds."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(session_ids)):
                found.update(conn.execute(select(sessions.c.id).where(sessions.c.id.in_(chunk))).scalars())
        return found

    def get_stats(self, filter_: StatsFilter) -> Stats:
        """Return totals, agents, date range, size, average duration and the requested breakdown."""
        with self.engine.connect() as conn:
            return reads.stats(conn, filter_, self.size_bytes())

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest audit entries first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
        return [{**row._mapping, "details": json.loads(row.details) if row.details else None} for row in rows]

    def size_bytes(self) -> int:
        """Return the bytes the store occupies (SQLite file and WAL; PostgreSQL tables and indexes)."""
        if self.path is not None:
            return sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))
        if self.dialect == dialects.SQLITE:
            return 0
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "WHERE c.relkind = 'r' AND c.relname IN ('events', 'sessions', 'rollups', 'audit_log') "
                "AND pg_table_is_visible(c.oid)").scalar_one())

    def _used_bytes(self) -> int:
        """Bytes in use, not counting free pages: what deleting rows reduces before a VACUUM."""
        if self.dialect != dialects.SQLITE:
            return self.size_bytes()
        with self.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int((pages - free) * size)

    def check(self) -> list[str]:
        """Run integrity checks; return the problems found ([] when the database is sound)."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect != dialects.SQLITE:
                conn.exec_driver_sql("SELECT 1")
                return problems
            problems += [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [f"foreign key: {table} row {rowid} refers to a missing {parent} row"
                         for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check")]
        if self._fts:
            # Compared with the events table, the index must be complete: index the tail first, in
            # the same write transaction, so no row can arrive unindexed in between.
            with self._lock:
                try:
                    with self._transaction() as cur:
                        mark, top = self._watermark(cur)
                        cur.execute(_INDEX_RANGE, (mark, top))
                        cur.execute(_SET_WATERMARK, (top,))
                        cur.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
                    self._unindexed, self._unindexed_since = 0, None
                except self._engine.dialect.dbapi.DatabaseError as exc:  # type: ignore[union-attr]
                    problems.append(f"text search index: {exc}")
        return problems

    def health(self) -> dict[str, Any]:
        """Return reachability, schema version, size and counts (from session_totals, no scan)."""
        try:
            with self.engine.connect() as conn:
                n_events, n_sessions = conn.execute(select(
                    func.coalesce(func.sum(session_totals.c.events), 0),
                    func.coalesce(func.sum(session_totals.c.sessions), 0))).one()
            return {"reachable": True, "name": self.name, "backend": self.dialect, "location": self._where(),
                    "schema_version": migrate.current_version(self.engine), "events": int(n_events),
                    "sessions": int(n_sessions), "size_bytes": self.size_bytes(), "text_search": self._fts
                    or self.dialect == dialects.POSTGRESQL}
        except Exception as exc:  # health reports failures, it never raises them
            return {"reachable": False, "name": self.name, "backend": self.dialect, "location": self._where(),
                    "error": str(exc)}


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start:start + _CHUNK])


class _Statements:
    """The write path's statements, compiled once per store to positional DBAPI SQL."""

    def __init__(self, dialect: str) -> None:
        d = dialects.writer_dialect(dialect)
        self.ph = "?" if dialect == dialects.SQLITE else "%s"
        self.insert_events, names = dialects.compile_positional(insert(events), d)
        assert names == EVENT_COLUMNS, names  # Plan.event_rows builds tuples in this order
        self.insert_session, self._session_names = dialects.compile_positional(insert(sessions), d)
        s = sessions.c

        def b(name: str, type_: Any) -> Any:
            # Prefixed: SQLAlchemy reserves a column's own name for the automatic SET parameter.
            return bindparam("b_" + name, type_=type_)

        one: Any = literal_column("1")  # inline, not a bind: only named parameters map to plan values
        started = b("started", Integer) == one
        last = b("last_event_time", BigInteger)
        start_time = b("start_time", BigInteger)
        self.update_session, self._update_names = dialects.compile_positional(
            update(sessions).where(s.id == b("sid", Text)).values(
                event_count=s.event_count + b("event_count", Integer),
                stream_count=s.stream_count + b("stream_count", Integer),
                error_count=s.error_count + b("error_count", Integer),
                last_event_time=case((or_(s.last_event_time.is_(None), s.last_event_time < last), last),
                                     else_=s.last_event_time),
                status=func.coalesce(b("status", Text), s.status),
                end_time=func.coalesce(b("end_time", BigInteger), s.end_time),
                duration=case((b("ended", Integer) == one, b("duration", Float)), else_=s.duration),
                start_time=case((started & (start_time < s.start_time), start_time), else_=s.start_time),
                **{col: case((started, b(col, Text)), else_=s[col])
                   for col in ("category", "action", "label", "sandbox_id", "repo_url", "metadata")}), d)
        cols = [c.name for c in rollups.c if c.name != "id"]
        ins = dialects.upsert_insert(dialect)(rollups).values({c: b(c, rollups.c[c].type) for c in cols})
        x, r = ins.excluded, rollups.c
        self.upsert_rollup, self._rollup_names = dialects.compile_positional(ins.on_conflict_do_update(
            index_elements=["period", "bucket_start", "category", "action", "event_type"],
            set_={"count": r.count + x.count, "error_count": r.error_count + x.error_count,
                  "duration_sum": r.duration_sum + x.duration_sum,
                  "duration_count": r.duration_count + x.duration_count,
                  "duration_min": dialects.least(dialect, r.duration_min, x.duration_min),
                  "duration_max": dialects.greatest(dialect, r.duration_max, x.duration_max)}), d)
        ins = dialects.upsert_insert(dialect)(session_totals).values(
            {c: b(c, session_totals.c[c].type) for c in ("category", *_TOTAL_COLUMNS)})
        x, t = ins.excluded, session_totals.c
        self.upsert_totals, self._totals_names = dialects.compile_positional(ins.on_conflict_do_update(
            index_elements=["category"], set_={c: t[c] + x[c] for c in _TOTAL_COLUMNS}), d)
        ins = dialects.upsert_insert(dialect)(session_rollups).values(
            {c: b(c, session_rollups.c[c].type) for c in ("period", "bucket_start", "category", *_SESSION_COLUMNS)})
        x, sr = ins.excluded, session_rollups.c
        self.upsert_session_rollup, self._session_rollup_names = dialects.compile_positional(
            ins.on_conflict_do_update(index_elements=["period", "bucket_start", "category"],
                                      set_={c: sr[c] + x[c] for c in _SESSION_COLUMNS}), d)

        cols = [c.name for c in writer_runs.c]
        assert tuple(cols) == WRITER_RUN_COLUMNS, cols
        ins = dialects.upsert_insert(dialect)(writer_runs).values({c: b(c, writer_runs.c[c].type) for c in cols})
        self.upsert_run, self._run_names = dialects.compile_positional(ins.on_conflict_do_update(
            index_elements=["run_id"],
            set_={c: ins.excluded[c] for c in cols if c not in ("run_id", "started_at")}), d)

    def known_sessions(self, n: int) -> str:
        """SELECT of the stored sessions among n ids."""
        return ("SELECT id, category, start_time, status, end_time, duration FROM sessions "
                f"WHERE id IN ({', '.join([self.ph] * n)})")

    def stored_ids(self, n: int) -> str:
        """SELECT of the stored event ids among n ids."""
        return f"SELECT event_id FROM events WHERE event_id IN ({', '.join([self.ph] * n)})"

    def session_row(self, d: Any) -> tuple[Any, ...]:
        """Parameters inserting a session first seen in this batch."""
        values = {"id": d.id, "category": d.category, "action": d.action, "status": d.status or "active",
                  "start_time": d.start_time, "end_time": d.end_time, "duration": d.duration,
                  "event_count": d.event_count, "stream_count": d.stream_count, "error_count": d.error_count,
                  "last_event_time": d.last_event_time, "label": d.label, "sandbox_id": d.sandbox_id,
                  "repo_url": d.repo_url, "metadata": d.metadata_json}
        return tuple(values[n] for n in self._session_names)

    def update_row(self, d: Any) -> tuple[Any, ...]:
        """Parameters adding one batch's delta to a stored session."""
        values = {"sid": d.id, "event_count": d.event_count, "stream_count": d.stream_count,
                  "error_count": d.error_count, "last_event_time": d.last_event_time, "status": d.status,
                  "ended": 1 if d.status is not None else 0, "end_time": d.end_time, "duration": d.duration,
                  "started": 1 if d.started else 0, "start_time": d.start_time, "category": d.category,
                  "action": d.action, "label": d.label, "sandbox_id": d.sandbox_id, "repo_url": d.repo_url,
                  "metadata": d.metadata_json}
        return tuple(values[n[2:]] for n in self._update_names)

    def totals_rows(self, totals: dict[str, TotalsDelta]) -> list[tuple[Any, ...]]:
        """Parameters adding per-category deltas to session_totals."""
        return [tuple(category if n == "b_category" else getattr(v, n[2:]) for n in self._totals_names)
                for category, v in totals.items()]

    def session_rollup_rows(self, buckets: dict[tuple[str, int, str], TotalsDelta]) -> list[tuple[Any, ...]]:
        """Parameters adding per-(period, bucket, category) session deltas to session_rollups."""
        out = []
        for (period, bucket, category), v in buckets.items():
            values = {"period": period, "bucket_start": bucket, "category": category}
            out.append(tuple(values[n[2:]] if n[2:] in values else getattr(v, n[2:])
                             for n in self._session_rollup_names))
        return out

    def rollup_rows(self, plan: Plan) -> list[tuple[Any, ...]]:
        """Parameters adding the batch's rollup deltas."""
        out = []
        for (period, bucket, category, action, kind), v in plan.rollups.items():
            values = {"period": period, "bucket_start": bucket, "category": category, "action": action,
                      "event_type": kind, "count": v.count, "error_count": v.error_count,
                      "duration_sum": v.duration_sum, "duration_count": v.duration_count,
                      "duration_min": v.duration_min, "duration_max": v.duration_max}
            out.append(tuple(values[n[2:]] for n in self._rollup_names))
        return out
