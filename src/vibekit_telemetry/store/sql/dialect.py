"""Everything that differs between SQLite and PostgreSQL, in one place: a Dialect strategy object.

The rest of the SQL store asks its `Dialect` (chosen once from the URL by `for_url`) and never
compares dialect names itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Table,
    and_,
    cast,
    create_engine,
    delete,
    event,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ClauseElement

from ...errors import StoreError
from ..schema import EVENT_COLUMNS, event_ids, events, session_totals, totals_deltas
from .pool import PoolOptions

_COPY_EVENTS: Final = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_COPY_IDS: Final = "COPY event_ids (event_id, timestamp) FROM STDIN"
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

    def prepare_writer(self, conn: Any) -> None:
        """Tune the writer's DBAPI connection once, after it is checked out of the pool."""

    def insert_events(self, cur: Any, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert new event rows (EVENT_COLUMNS order) in the writer's open transaction."""
        cur.executemany(insert_sql, rows)

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

    def reindex(self, engine: Engine, writer: Any) -> None:
        """Rebuild every index of the store's tables."""
        raise NotImplementedError


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

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            # Take transaction control from the sqlite3 module (it would not BEGIN before DDL), so a
            # migration is one real transaction; the "begin" hook below issues BEGIN instead.
            dbapi_conn.isolation_level = None
            apply_sqlite_pragmas(dbapi_conn, busy_timeout_ms, wal and not memory)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers ask for IMMEDIATE: take the write lock (waiting busy_timeout) before reading,
            # instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate")
                                 else "BEGIN")

        return engine

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

    def reindex(self, engine: Engine, writer: Any) -> None:
        """REINDEX every index of the database."""
        writer.execute("REINDEX")


class PostgreSQLDialect(Dialect):
    """PostgreSQL through psycopg 3: jsonb comparisons, pg_trgm ILIKE, server-side sizes."""

    name = POSTGRESQL
    placeholder = "%s"
    lookup_ids_first = True
    native_text_search = True
    vacuum_shrinks = False  # the files do not shrink without VACUUM FULL: one prune pass by row share
    position_column = "seq"  # identity column (migration 0009); never handed out twice
    reuses_positions = False
    positions_commit_in_order = False  # sequence values are taken before commit, by any writer
    shared_by_replicas = True
    partitioned = True  # migration 0014
    ids_table = "event_ids"

    def positional(self) -> SADialect:
        """Return the psycopg dialect with format (%s) parameters."""
        return postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-any-return,no-untyped-call]

    def upsert_insert(self) -> Any:
        """Return postgresql.insert."""
        return postgresql.insert

    def insert_events(self, cur: Any, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """COPY the rows: twice executemany's rate (bench/pg_copy_vs_multirow.py).

        COPY has no ON CONFLICT, which is safe here: this dialect looks stored ids up first
        (lookup_ids_first, in event_ids), and an id a concurrent writer committed meanwhile raises a
        unique violation on event_ids, after which store_batch rolls back and writes the batch again
        with the ids checked. event_ids is what keeps an id unique across partitions (partitions.py).
        """
        with cur.copy(_COPY_IDS) as copy:
            for row in rows:
                copy.write_row((row[0], row[_TS]))
        with cur.copy(_COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)

    def least(self, a: Any, b: Any) -> Any:
        """least() ignores NULLs."""
        return func.least(a, b)

    def greatest(self, a: Any, b: Any) -> Any:
        """greatest() ignores NULLs."""
        return func.greatest(a, b)

    def nulls_low(self, column: Any, desc: bool) -> Any:
        """PostgreSQL sorts NULL highest by default: say otherwise (the index is NULLS FIRST to match)."""
        return column.desc().nulls_last() if desc else column.asc().nulls_first()

    def metadata_equals(self, column: Any, key: str, value: Any) -> ColumnElement[bool]:
        """jsonb containment (@>, served by ix_events_metadata_gin), then equality: numbers by value, true != 1.

        The jsonb is the index's own expression (partitions.METADATA_JSONB) so the planner matches it;
        containment alone would let [1, 2] match 1, hence the exact comparison after it.
        """
        from .partitions import METADATA_JSONB

        doc: Any = literal_column(METADATA_JSONB.replace("metadata", "events.metadata", 1), JSONB)
        item = doc[key]
        if value is None:  # a missing key matches too: no containment to test
            return or_(item.is_(None), item == cast(literal("null"), JSONB))
        text = json.dumps(value).replace("\\u0000", "\\ufffd")
        wanted = cast(literal(text), JSONB)
        return and_(doc.contains(cast(literal(json.dumps({key: value}).replace("\\u0000", "\\ufffd")), JSONB)),
                    item == wanted)

    def contains(self, text: str, *, fts: bool) -> ColumnElement[bool]:
        """ILIKE '%x%', which the pg_trgm GIN indexes of migration 0003 serve (BitmapOr of the two)."""
        pattern = _like_pattern(text)
        return or_(events.c.label.ilike(pattern, escape="\\"), events.c.stream_data.ilike(pattern, escape="\\"))

    def make_engine(self, url: str, *, busy_timeout_ms: int, wal: bool, pool: PoolOptions | None = None) -> Engine:
        """A pooled engine; pre_ping makes a server restart between queries cost one reconnect."""
        if pool is None:
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, pool_pre_ping=True, **pool.engine_kwargs())
        pool.attach(engine)
        return engine

    def lock_for_write(self, cur: Any) -> None:
        """Lock sessions first (ROW EXCLUSIVE: writers never wait on each other for it).

        Partition DDL locks sessions (for the foreign key) and then events; a writer that reached
        events before sessions could deadlock with it. Taking sessions first in every write
        transaction makes the order the same everywhere (store/sql/partitions.py).
        """
        cur.execute(PG_WRITE_LOCK)

    def begin_maintenance(self, conn: Connection) -> None:
        """The partition lock, then the writers' lock order (see lock_for_write).

        Maintenance (retention above all) may drop partitions; taking the lock partition upkeep holds
        first, as upkeep does, keeps the two from waiting on each other's table locks.
        """
        from .partitions import PARTITION_LOCK_KEY

        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK_KEY})")
        conn.exec_driver_sql(PG_WRITE_LOCK)

    def totals_table(self) -> Table:
        """totals_deltas: each writer adds to its own rows, so writers never wait on one hot row."""
        return totals_deltas

    def totals_source(self) -> FromClause:
        """session_totals plus every writer's unfolded deltas, summed in one statement (one snapshot)."""
        names = [c.name for c in session_totals.c]
        both = union_all(select(*(session_totals.c[n] for n in names)),
                         select(*(totals_deltas.c[n] for n in names))).subquery()
        return select(both.c.category, *(func.sum(both.c[n]).label(n) for n in names[1:])).group_by(
            both.c.category).subquery("session_totals")

    def fold_totals(self, conn: Connection) -> None:
        """Fold totals_deltas into session_totals (partitions.fold_totals)."""
        from .partitions import fold_totals

        fold_totals(conn)

    def delete_events(self, conn: Connection, where: list[ColumnElement[bool]]) -> int:
        """Delete the events and their event_ids rows in one statement."""
        gone = delete(events).where(*where).returning(events.c.event_id).cte("gone")
        ids = delete(event_ids).where(event_ids.c.event_id.in_(select(gone.c.event_id))).cte("gone_ids")
        return int(conn.execute(select(func.count()).select_from(gone).add_cte(ids)).scalar_one())

    def upkeep(self, conn: Connection, interval_ms: int, now: int, ahead: int) -> list[str]:
        """Create the partitions ahead and fold the totals deltas."""
        from .partitions import ensure_ahead, fold_totals

        created = ensure_ahead(conn, interval_ms, now, ahead)
        fold_totals(conn)
        return created

    def connection_lost(self, conn: Any) -> bool:
        """psycopg marks a connection closed or broken after a restart, failover or idle timeout."""
        dbapi = getattr(conn, "dbapi_connection", conn)
        return bool(getattr(dbapi, "closed", False) or getattr(dbapi, "broken", False))

    def is_transient(self, exc: BaseException) -> bool:
        """OperationalError: the server went away, refused a connection, or a lock timed out."""
        import psycopg

        return isinstance(exc, psycopg.OperationalError)

    def is_disk_full(self, exc: BaseException) -> bool:
        """SQLSTATE 53100 (disk_full) from the server."""
        return getattr(exc, "sqlstate", None) == "53100"

    def is_refused(self, exc: BaseException, integrity_error: type[BaseException]) -> bool:
        """DataError (a value out of range, a NUL byte, bad encoding) or a constraint on the rows."""
        import psycopg

        return super().is_refused(exc, integrity_error) or isinstance(exc, psycopg.DataError)

    def size_bytes(self, engine: Engine | None, path: str | None) -> int:
        """pg_total_relation_size of the store's tables and of every events partition (with indexes and TOAST)."""
        if engine is None:
            return 0
        with engine.connect() as conn:
            names = ", ".join(f"'{t}'" for t in (*_SIZED_TABLES, "event_ids") if t != "events")
            return int(conn.exec_driver_sql(
                "SELECT COALESCE(SUM(pg_total_relation_size(x)), 0) FROM (SELECT c.oid AS x FROM pg_class c "
                f"WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid) AND c.relname IN ({names}) "
                "UNION ALL SELECT relid FROM pg_partition_tree(to_regclass('events')) WHERE isleaf) t").scalar_one())

    def vacuum(self, engine: Engine, writer: Any) -> None:
        """VACUUM ANALYZE outside a transaction (it cannot run inside one)."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE events, event_ids, sessions, rollups")

    def reindex(self, engine: Engine, writer: Any) -> None:
        """REINDEX TABLE for each of the store's tables (a partitioned one cannot be inside a transaction)."""
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _PG_INDEXED_TABLES:
                conn.exec_driver_sql(f"REINDEX TABLE {table}")


_DIALECTS: Final[dict[str, Dialect]] = {SQLITE: SQLiteDialect(), POSTGRESQL: PostgreSQLDialect()}


def for_url(url: str) -> Dialect:
    """Return the Dialect of a SQLAlchemy URL; StoreError for databases the store does not support."""
    found = _DIALECTS.get(make_url(url).get_backend_name())
    if found is None:
        raise StoreError(f"unsupported database URL {make_url(url)!r}: expected sqlite or postgresql")
    return found


def make_engine(url: str, *, busy_timeout_ms: int, wal: bool) -> Engine:
    """Create the engine of a database URL as the store configures it (for the CLI's schema commands)."""
    return for_url(url).make_engine(url, busy_timeout_ms=busy_timeout_ms, wal=wal)
