"""SQLite's side of every SQLite/PostgreSQL difference (see dialect.py)."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    literal_column,
    or_,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect as SADialect

from ..schema import events
from .dialect_base import (
    _WATERMARK,
    ANALYZED_TABLES,
    SQLITE,
    WRITER_CACHE_KB,
    Dialect,
    _like_pattern,
    apply_sqlite_pragmas,
    sqlite_path,
)
from .pool import PoolOptions

# ANALYZE visits at most this many entries of each index (PRAGMA analysis_limit), so its cost is
# bounded whatever the table's size: 70 ms for four indexes of a 1M-row table with 100,000 on the
# shared 2-core VM. Below the limit the statistics are exact. Past it SQLite underestimates how many
# rows share a leading value (the first N entries of ix_sessions_category hold one category), but
# "at least N rows per agent" still tells the planner an agent filter is no narrower than the sort
# index walk, which is what a filtered, sorted Sessions page needs (bench/bench_session_stats.py).
ANALYSIS_LIMIT: Final = 200_000
# A table is analyzed again once its rowid span has doubled or halved since its last ANALYZE: a
# growing store is analyzed log2(size) times in its life, each bounded by ANALYSIS_LIMIT.
RESTALE_FACTOR: Final = 2
# store_meta keys: a table's rowid span (max - min + 1, an O(log n) row-count estimate) at its last ANALYZE.
_SPAN_KEY: Final = "stats_span:"


@dataclass(slots=True)
class _Statistics:
    """What an engine's connections know of sqlite_stat1: its fingerprint, and an epoch bumped on change."""

    fingerprint: str | None = None
    epoch: int = 0


# Per engine: a connection loads sqlite_stat1 when it opens and never again on its own, even after
# another connection's ANALYZE (nor after a schema change): pooled readers would keep planning
# without statistics. Each checkout compares its epoch and reloads (ANALYZE sqlite_master) on change.
_STATISTICS: weakref.WeakKeyDictionary[Engine, _Statistics] = weakref.WeakKeyDictionary()


# Rows per INSERT statement: 125 rows of the 16 event columns are 2,000 parameters (SQLite allows 32,766).
MULTI_ROW: Final = 125


@functools.lru_cache(maxsize=4 * MULTI_ROW)
def _multi_row(insert_sql: str, n: int) -> str:
    """The compiled one-row INSERT (or upsert: its ON CONFLICT clause follows) with n rows in its VALUES clause."""
    head, rest = insert_sql.split(" VALUES (", 1)
    params, tail = rest.split(")", 1)  # the row's placeholders hold no parenthesis
    return f"{head} VALUES {', '.join([f'({params})'] * n)}{tail}"


class SQLiteDialect(Dialect):
    """SQLite: a file (or memory), FTS5 trigram text index, WAL, BEGIN IMMEDIATE writes."""

    name = SQLITE
    placeholder = "?"
    lookup_ids_first = False
    native_text_search = False
    vacuum_shrinks = True
    position_column = "rowid"  # one writer at a time: rowids grow in commit order
    reuses_positions = True  # a new row takes max(rowid) + 1
    positions_commit_in_order = True  # one writer at a time, whatever the number of processes
    shared_by_replicas = False  # a file on one host: replicas are a PostgreSQL deployment

    def positional(self) -> SADialect:
        """Return the pysqlite dialect (qmark parameters)."""
        return sqlite.pysqlite.dialect()  # type: ignore[no-any-return]

    def upsert_insert(self) -> Any:
        """Return sqlite.insert."""
        return sqlite.insert

    def least(self, a: Any, b: Any) -> Any:
        """SQLite's two-argument min() returns NULL if either is: coalesce both ways first."""
        return func.min(func.coalesce(a, b), func.coalesce(b, a))

    def greatest(self, a: Any, b: Any) -> Any:
        """As least(), with max()."""
        return func.max(func.coalesce(a, b), func.coalesce(b, a))

    def nulls_low(self, column: Any, desc: bool) -> Any:
        """SQLite sorts NULL lowest already (and NULLS FIRST/LAST needs SQLite 3.30)."""
        return column.desc() if desc else column.asc()

    def metadata_equals(self, column: Any, key: str, value: Any) -> ColumnElement[bool]:
        """Compare json_type and json_extract of the key's path."""
        path = '$."' + key.replace('"', '\\"') + '"'
        kind = func.json_type(column, path)
        if value is None:
            return or_(kind.is_(None), kind == "null")
        if isinstance(value, bool):
            return kind == ("true" if value else "false")
        extracted = func.json_extract(column, path)
        if isinstance(value, int | float):
            return and_(kind.in_(("integer", "real")), extracted == value)
        if isinstance(value, str):
            return and_(kind == "text", extracted == value)
        return func.json(extracted) == func.json(json.dumps(value))

    def contains(self, text: str, *, fts: bool) -> ColumnElement[bool]:
        """FTS5 trigram phrase up to the watermark plus LIKE over the unindexed tail; LIKE alone otherwise."""
        if "\x00" in text:
            # FTS5 and LIKE read their pattern as a C string: a NUL ends it (FTS5: "unterminated string",
            # a 500; LIKE: a shorter pattern, wrong matches). instr() and lower() keep the whole value.
            return or_(*(func.instr(func.lower(col), func.lower(text)) > 0
                         for col in (events.c.label, events.c.stream_data)))
        pattern = _like_pattern(text)
        if fts and len(text) >= 3:
            # The trigram tokenizer answers a quoted phrase as a case-insensitive substring match; it
            # needs at least three characters, so shorter needles fall back to LIKE. The index covers
            # the rows up to the watermark (migration 0005); the few newer rows are scanned with LIKE,
            # so the answer is exact and complete whether or not the writer has indexed them yet.
            phrase = '"' + text.replace('"', '""') + '"'
            matches = sql_text(
                f"SELECT rowid FROM events_fts WHERE events_fts MATCH :fts_phrase AND rowid <= ({_WATERMARK}) "
                f"UNION ALL SELECT rowid FROM events WHERE rowid > ({_WATERMARK}) "
                "AND (label LIKE :fts_like ESCAPE '\\' OR stream_data LIKE :fts_like ESCAPE '\\')"
            ).bindparams(fts_phrase=phrase, fts_like=pattern)
            return literal_column("events.rowid").in_(matches)
        # SQLite's LIKE is case-insensitive for ASCII.
        return or_(events.c.label.like(pattern, escape="\\"), events.c.stream_data.like(pattern, escape="\\"))

    def make_engine(self, url: str, *, busy_timeout_ms: int, wal: bool, pool: PoolOptions | None = None) -> Engine:
        """An engine whose SQLite transactions really BEGIN (IMMEDIATE when asked), pragmas set per connection."""
        memory = sqlite_path(url) is None
        # Pooled connections may be checked out by any thread (one at a time), hence
        # check_same_thread=False; keeping them open makes a session lookup a query, not an open().
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})

        stats = _STATISTICS.setdefault(engine, _Statistics())

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, record: Any) -> None:
            # Take transaction control from the sqlite3 module (it would not BEGIN before DDL), so a
            # migration is one real transaction; the "begin" hook below issues BEGIN instead.
            dbapi_conn.isolation_level = None
            apply_sqlite_pragmas(dbapi_conn, busy_timeout_ms, wal and not memory)
            record.info["stats_epoch"] = stats.epoch  # it loads the current statistics with the schema

        @event.listens_for(engine, "checkout")
        def _on_checkout(dbapi_conn: sqlite3.Connection, record: Any, _proxy: Any) -> None:
            if record.info.get("stats_epoch") != stats.epoch:
                try:
                    dbapi_conn.execute("ANALYZE sqlite_master")  # reloads sqlite_stat1; writes nothing
                except sqlite3.Error:
                    return  # locked past busy_timeout (a VACUUM): plan with the old ones, reload next time
                record.info["stats_epoch"] = stats.epoch

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers ask for IMMEDIATE: take the write lock (waiting busy_timeout) before reading,
            # instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate")
                                 else "BEGIN")

        return engine

    def refresh_statistics(self, engine: Engine, lock: AbstractContextManager[Any], *,
                           every_table: bool = False) -> list[str]:
        """ANALYZE (bounded by ANALYSIS_LIMIT) each store table never analyzed or resized 2x since; reload readers.

        PRAGMA optimize would decide the same on SQLite 3.46+ (mask 0x10000); before that it only
        considers tables the running connection itself has queried, which a job's fresh connection
        has not, so the decision is taken here, the same on every version. The checks are reads; the
        write lock is taken only when a table is due.
        """
        with engine.connect() as conn:
            due = _due_tables(conn, every_table)
        if due:
            with lock, engine.connect() as conn, self.for_writing(conn).begin():
                conn.exec_driver_sql(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
                for table, span in due.items():
                    conn.exec_driver_sql(f"ANALYZE {table}")
                    conn.exec_driver_sql("INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                                         "DO UPDATE SET value = excluded.value", (_SPAN_KEY + table, span))
        stats = _STATISTICS.get(engine)
        if stats is not None:  # statistics changed (here or by another process): pooled readers reload them
            with engine.connect() as conn:
                fingerprint = str(conn.exec_driver_sql(
                    "SELECT group_concat(tbl || ' ' || coalesce(idx, '') || ' ' || stat, ';') FROM "
                    "(SELECT * FROM sqlite_stat1 ORDER BY tbl, idx)").scalar()) if _has_stat1(conn) else ""
            if fingerprint != stats.fingerprint:
                stats.fingerprint = fingerprint
                stats.epoch += 1
        return list(due)

    def insert_events(self, cur: Any, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert the rows MULTI_ROW at a time, one statement each (VALUES (…), (…), …).

        executemany runs one sqlite3_step per row, and the sqlite3 module gives up the GIL around each
        step: beside a busy thread (the server's event loop, a caller tracking in a loop) every row then
        waits to win the GIL back. One statement per MULTI_ROW rows gives it up once per statement: 4.2 s
        instead of 8.7–16 s for 100k rows beside a spinning thread, and less CPU alone (0.64 vs 0.79 s;
        bench/RESULTS.md, session 5). A duplicate id fails the statement as a whole, as it failed
        executemany: the store then writes the batch again with the ids looked up.
        """
        self.insert_many(cur, insert_sql, (), rows)

    def insert_many(self, cur: Any, insert_sql: str, types: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """Run a one-row INSERT or upsert for every row, MULTI_ROW rows a statement (see insert_events).

        An upsert's rows never repeat a conflict key (the plan aggregates by it); if they did, SQLite
        would apply them one after another, as executemany did.
        """
        for start in range(0, len(rows), MULTI_ROW):
            chunk = rows[start:start + MULTI_ROW]
            cur.execute(_multi_row(insert_sql, len(chunk)), [value for row in chunk for value in row])

    def prepare_writer(self, conn: Any) -> None:
        """A bigger page cache, and statement journals in a temp file rather than in memory."""
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")
        # The writer sorts nothing big; its temporary storage is statement journals, mostly of the bulk
        # text-index inserts (FTS5 segment merges). In memory they peaked at ~50 MB while ingesting 1M
        # events (sqlite3_memory_highwater); in a temp file (spilled past 64 KB, kept in the OS cache)
        # peak RSS went from 130 to 94 MB at 2-3 % of ingest rate, within this machine's noise.
        conn.execute("PRAGMA temp_store = FILE")

    def begin(self, cur: Any) -> None:
        """BEGIN IMMEDIATE takes the write lock up front, so the session lookups see what we update."""
        cur.execute("BEGIN IMMEDIATE")

    def commit(self, conn: Any, cur: Any) -> None:
        """COMMIT (the connection is in autocommit mode: the store issues BEGIN itself)."""
        cur.execute("COMMIT")

    def rollback(self, conn: Any, cur: Any) -> None:
        """ROLLBACK."""
        cur.execute("ROLLBACK")

    def lock_for_append(self, conn: Connection, table: str) -> None:
        """BEGIN IMMEDIATE (for_writing) already holds the database's one write lock."""

    def for_writing(self, conn: Connection) -> Connection:
        """Ask the engine's begin hook for BEGIN IMMEDIATE."""
        return conn.execution_options(sqlite_immediate=True)

    def has_text_index(self, conn: Connection) -> bool:
        """Whether migration 0003/0005 created events_fts (SQLite builds with the trigram tokenizer)."""
        return conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'events_fts'").first() is not None

    def is_transient(self, exc: BaseException) -> bool:
        """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the write lock past busy_timeout."""
        text = str(exc).lower()
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)

    def is_disk_full(self, exc: BaseException) -> bool:
        """SQLITE_FULL ("database or disk is full"), or the OS's ENOSPC on the WAL or a temporary file."""
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(exc, sqlite3.OperationalError) and (code == 13 or "disk is full" in str(exc).lower())

    def size_bytes(self, engine: Engine | None, path: str | None) -> int:
        """The database file and its WAL (0 for an in-memory database)."""
        if path is None:
            return 0
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))

    def used_bytes(self, engine: Engine, path: str | None) -> int:
        """Pages in use times the page size."""
        with engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
            size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
        return int((pages - free) * size)

    def integrity_problems(self, conn: Connection) -> list[str]:
        """PRAGMA integrity_check and foreign_key_check."""
        problems = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {table} row {rowid} refers to a missing {parent} row"
                     for table, rowid, parent, _ in conn.exec_driver_sql("PRAGMA foreign_key_check")]
        return problems

    def vacuum(self, engine: Engine, writer: Any) -> None:
        """VACUUM on the writer connection (it holds the lock the store serialises writes with)."""
        writer.execute("VACUUM")

    def checkpoint(self, writer: Any, *, truncate: bool = False) -> None:
        """Copy the WAL into the database file (TRUNCATE also empties the WAL file)."""
        writer.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")

    @contextmanager
    def lock_wait_at_most(self, writer: Any, deadline: float | None) -> Iterator[None]:
        """busy_timeout lowered to what is left until deadline, and put back after."""
        if deadline is None:
            yield
            return
        usual = int(writer.execute("PRAGMA busy_timeout").fetchone()[0])
        left_ms = max(0, int((deadline - time.monotonic()) * 1000))
        writer.execute(f"PRAGMA busy_timeout = {min(usual, left_ms)}")
        try:
            yield
        finally:
            writer.execute(f"PRAGMA busy_timeout = {usual}")

    def reindex(self, engine: Engine, writer: Any) -> None:
        """REINDEX every index of the database."""
        writer.execute("REINDEX")


def _has_stat1(conn: Connection) -> bool:
    return conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first() is not None


def _due_tables(conn: Connection, every_table: bool) -> dict[str, int]:
    """The store tables whose statistics are missing or stale, with their rowid span now (empty tables: none)."""
    names = {str(r[0]) for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    analyzed = {str(r[0]) for r in conn.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1")} \
        if "sqlite_stat1" in names else set()
    spans = {str(k)[len(_SPAN_KEY):]: int(v) for k, v in conn.exec_driver_sql(
        "SELECT key, value FROM store_meta WHERE key LIKE 'stats_span:%'")} if "store_meta" in names else {}
    due: dict[str, int] = {}
    for table in ANALYZED_TABLES:
        if table not in names:
            continue
        # max/min of the rowid are two probes of the table's b-tree, whatever its size (count(*) scans);
        # in one SELECT together they would scan it: the min/max optimisation takes a lone aggregate.
        span = conn.exec_driver_sql(f"SELECT (SELECT max(rowid) FROM {table}) - (SELECT min(rowid) FROM {table}) "
                                    "+ 1").scalar()
        if not span:
            continue  # empty: ANALYZE would record nothing
        last = spans.get(table)
        if every_table or table not in analyzed or not last or span >= last * RESTALE_FACTOR \
                or span * RESTALE_FACTOR <= last:
            due[table] = int(span)
    return due
