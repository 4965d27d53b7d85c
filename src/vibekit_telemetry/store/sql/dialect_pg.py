"""PostgreSQL's side of every SQLite/PostgreSQL difference (see dialect.py)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from functools import cache
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    FromClause,
    Integer,
    String,
    Table,
    and_,
    cast,
    create_engine,
    delete,
    event,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect as SADialect

from ..schema import EVENT_COLUMNS, event_ids, events, session_totals, totals_deltas
from .dialect_base import (
    _PG_INDEXED_TABLES,
    _SIZED_TABLES,
    _TS,
    PG_WRITE_LOCK,
    POSTGRESQL,
    Dialect,
    Writes,
    _like_pattern,
)
from .pool import PoolOptions

# Event rows go in as one array per column (binary parameters, %b), so the insert is an ordinary statement
# that the writer's pipeline can queue with the rest of the transaction (COPY cannot be pipelined).
_PG_TYPES: Final = {"value": "float8", "duration": "float8", "timestamp": "int8"}
_EVENT_CASTS: Final = tuple(_PG_TYPES.get(c, "text") for c in EVENT_COLUMNS)
_INSERT_IDS: Final = "INSERT INTO event_ids (event_id, timestamp) SELECT * FROM unnest(%b::text[], %b::int8[])"
_INSERT_EVENTS: Final = (f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT * FROM unnest("
                         + ", ".join(f"%b::{c}[]" for c in _EVENT_CASTS) + ")")


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
    # size_bytes() opens every partition and index and stats their files (10-15 ms at 36 partitions,
    # most of an unfiltered get_stats() before): stats and health reuse a reading this recent.
    size_max_age_s = 10.0
    array_lookups = True

    def positional(self) -> SADialect:
        """Return the psycopg dialect with format (%s) parameters."""
        return postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-any-return,no-untyped-call]

    def upsert_insert(self) -> Any:
        """Return postgresql.insert."""
        return postgresql.insert

    def writes(self, cur: Any) -> Writes:
        """One statement for all of a batch's inserts (_CombinedWrites)."""
        return _CombinedWrites(self, cur)

    def insert_events(self, cur: Any, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert event_ids and events rows now, as one statement (_CombinedWrites.insert_events)."""
        writes = _CombinedWrites(self, cur)
        writes.insert_events(insert_sql, rows)
        writes.flush()

    def insert_many(self, cur: Any, insert_sql: str, types: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """Insert (or upsert) the rows now, as one statement (_CombinedWrites.insert_many)."""
        writes = _CombinedWrites(self, cur)
        writes.insert_many(insert_sql, types, rows)
        writes.flush()

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
        if "\x00" in text:  # text columns cannot hold NUL (the store refuses such rows): nothing contains it
            return false()
        pattern = _like_pattern(text)
        return or_(events.c.label.ilike(pattern, escape="\\"), events.c.stream_data.ilike(pattern, escape="\\"))

    def make_engine(self, url: str, *, busy_timeout_ms: int, wal: bool, pool: PoolOptions | None = None) -> Engine:
        """A pooled engine; pre_ping makes a server restart between queries cost one reconnect."""
        engine = create_engine(url, pool_pre_ping=True, **(pool.engine_kwargs() if pool is not None else {}))

        @event.listens_for(engine, "connect")
        def _session_settings(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                # JIT compiles any plan whose estimated cost passes jit_above_cost. A metadata filter with
                # LIMIT 100 over 10M partitioned events is estimated high and runs in 5 ms, but compiling
                # it took 230 ms (bench/pg_scale_queries.py): the store's queries are short, never worth it.
                cur.execute("SET jit = off")
                # Another session's lock (one left idle in a transaction, a long LOCK TABLE) is waited
                # for busy_timeout_ms, as on SQLite, not for ever. Before, it hung the writer, the
                # scheduler's jobs and, through the store's lock they hold, flush(), shutdown() and the
                # health report. Now a batch fails as transient and is retried (nothing is lost), a job
                # fails and runs again later, a read answers with an error. Migrations lift it: one
                # replica waits for another's on purpose (migrate.py).
                cur.execute(f"SET lock_timeout = {max(1, int(busy_timeout_ms))}")
            dbapi_conn.commit()

        if pool is not None:
            pool.attach(engine)
        return engine

    def write_scope(self, conn: Any) -> AbstractContextManager[Any]:
        """A psycopg pipeline: statements are sent as they come and read at the next sync.

        The lock and the lookups go out together (one round trip when the lookups are read), then every
        write of the batch and the COMMIT (a second): each statement on its own would be a round trip,
        and each wait for one a point where the writer thread must win the GIL back from the event loop.
        """
        return conn.driver_connection.pipeline()  # type: ignore[no-any-return]

    def commit(self, conn: Any, cur: Any) -> None:
        """Commit; on failure roll back: in the pipeline a statement's own error surfaces at this sync."""
        try:
            conn.commit()
        except Exception:
            try:
                self.rollback(conn, cur)
            except Exception:
                if not self.connection_lost(conn):
                    raise
            raise

    def rollback(self, conn: Any, cur: Any) -> None:
        """Roll back; in the writer's pipeline, first drain the statements a failed one made the server skip."""
        import psycopg

        try:
            conn.rollback()
        except psycopg.errors.PipelineAborted:
            # The sync that ends the aborted part of the pipeline reports each skipped statement as
            # PipelineAborted; the failed statement's own error is the one already propagating.
            conn.rollback()

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
        return _totals_source()

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


class _CombinedWrites(Writes):
    """A batch's inserts as the data-modifying CTEs of one statement: one execute, one Bind/Execute.

    In the writer's pipeline each execute is a send and a poll, and each poll lets the event loop take
    the GIL; the server plans and runs one statement instead of six. The CTEs run in no set order and
    cannot see each other's rows, which these inserts never need: new sessions, event ids, events and
    the rollup/totals upserts touch different tables, and the events' foreign key to sessions is
    checked at the end of the statement, when the new sessions are there.
    """

    def __init__(self, dialect: Dialect, cur: Any) -> None:
        super().__init__(dialect, cur)
        self.parts: list[str] = []
        self.params: list[Any] = []

    def insert_many(self, insert_sql: str, types: tuple[Any, ...], rows: list[tuple[Any, ...]]) -> None:
        """Hold back the statement with VALUES (...) as SELECT * FROM unnest(one binary array per column).

        The callers' rows never repeat a conflict key (the plan aggregates by it), which an upsert of
        several rows in one statement requires. One statement instead of one per row: a rollup upsert
        is ~18 rows per commit, each a Bind/Execute for the server and a send for psycopg.
        """
        sql, casts = _unnest_form(insert_sql, types)
        self.parts.append(sql)
        self.params += _columns(rows, casts)

    def insert_events(self, insert_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Hold back the event_ids and events inserts, INSERT ... SELECT FROM unnest(binary arrays).

        No ON CONFLICT, which is safe here: this dialect looks stored ids up first (lookup_ids_first,
        in event_ids), and an id a concurrent writer committed meanwhile raises a unique violation on
        event_ids, after which store_batch rolls back and writes the batch again with the ids checked.
        event_ids is what keeps an id unique across partitions (partitions.py). Not COPY, which cannot
        run in a pipeline and is two waits of its own (bench/RESULTS.md, session 5); it costs the
        server 4-8 % less CPU per row, which a quiet-machine A/B should weigh.
        """
        columns = _event_columns(rows)
        self.parts += [_INSERT_IDS, _INSERT_EVENTS]
        self.params += [columns[0], columns[_TS], *columns]

    def flush(self) -> None:
        """Send what was held back as one statement."""
        if len(self.parts) == 1:
            self.cur.execute(self.parts[0], self.params)
        elif self.parts:
            ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(self.parts))
            self.cur.execute(f"WITH {ctes} SELECT 1", self.params)
        self.parts, self.params = [], []


def _columns(rows: list[tuple[Any, ...]], casts: tuple[str, ...]) -> list[list[Any]]:
    """The rows as one list per column; float8 columns as floats (an array holds one element type)."""
    columns = [list(c) for c in zip(*rows, strict=True)]
    for i, cast_ in enumerate(casts):
        if cast_ == "float8":  # ints among floats would be refused by the dumper
            columns[i] = [None if v is None else float(v) for v in columns[i]]
    return columns


def _event_columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Event rows (EVENT_COLUMNS order) as one list per column, for _INSERT_IDS and _INSERT_EVENTS."""
    return _columns(rows, _EVENT_CASTS)


@cache
def _unnest_form(insert_sql: str, types: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """The INSERT ... SELECT FROM unnest(...) form of a compiled one-row INSERT, and each array's element type."""
    casts = tuple(_pg_type(t) for t in types)
    start = insert_sql.index(" VALUES (")
    end = insert_sql.index(")", start)
    if insert_sql[start + len(" VALUES ("):end].count("%s") != len(casts):
        raise ValueError(f"insert_many: {len(casts)} types for the statement's parameters: {insert_sql[:80]}")
    unnest = ", ".join(f"%b::{c}[]" for c in casts)
    return f"{insert_sql[:start]} SELECT * FROM unnest({unnest}){insert_sql[end + 1:]}", casts


def _pg_type(type_: Any) -> str:
    """The array element type for a column of this SQLAlchemy type."""
    if isinstance(type_, Float):
        return "float8"
    if isinstance(type_, Integer):  # BigInteger too; int8 fits any integer column by assignment
        return "int8"
    if isinstance(type_, String):  # Text too
        return "text"
    raise TypeError(f"insert_many: no array type for {type_!r}")


@cache
def _totals_source() -> FromClause:
    """Built once: stats and health read it on every call, and building it costs more than reading it."""
    names = [c.name for c in session_totals.c]
    both = union_all(select(*(session_totals.c[n] for n in names)),
                     select(*(totals_deltas.c[n] for n in names))).subquery()
    return select(both.c.category, *(func.sum(both.c[n]).label(n) for n in names[1:])).group_by(
        both.c.category).subquery("session_totals")
