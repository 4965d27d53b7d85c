"""Everything that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    cast,
    create_engine,
    event,
    func,
    literal,
    literal_column,
    or_,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql.elements import ClauseElement

from ..errors import StoreError
from .schema import events

SQLITE: Final = "sqlite"
_WATERMARK: Final = "SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid'"
POSTGRESQL: Final = "postgresql"


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


def apply_sqlite_pragmas(conn: sqlite3.Connection, busy_timeout_ms: int, wal: bool) -> None:
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


def make_engine(url: str, *, busy_timeout_ms: int, wal: bool) -> Engine:
    """Create the engine reads and migrations use, with SQLite transactions that really BEGIN."""
    if make_url(url).get_backend_name() != SQLITE:
        # pre_ping: a server restart between queries costs one reconnect, not a failed read.
        return create_engine(url, pool_pre_ping=True)
    memory = sqlite_path(url) is None
    # Pooled read connections may be checked out by any thread (one at a time), hence
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


def writer_dialect(name: str) -> Dialect:
    """Return a dialect whose compiled statements take positional parameters, for DBAPI executemany."""
    if name == SQLITE:
        return sqlite.pysqlite.dialect()  # type: ignore[no-any-return]
    return postgresql.psycopg.dialect(paramstyle="format")  # type: ignore[no-any-return,no-untyped-call]


def compile_positional(stmt: ClauseElement, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """Compile a statement once: its SQL text and the bind names in parameter order."""
    compiled = stmt.compile(dialect=dialect)
    names: list[str] = getattr(compiled, "positiontup", None) or []
    return compiled.string, tuple(names)


def upsert_insert(name: str) -> Any:
    """Return the dialect's insert() that has on_conflict_do_update."""
    return sqlite.insert if name == SQLITE else postgresql.insert


def least(name: str, a: Any, b: Any) -> Any:
    """Smaller of two nullable values (SQLite's two-argument min() returns NULL if either is)."""
    if name == SQLITE:
        return func.min(func.coalesce(a, b), func.coalesce(b, a))
    return func.least(a, b)


def greatest(name: str, a: Any, b: Any) -> Any:
    """Larger of two nullable values."""
    if name == SQLITE:
        return func.max(func.coalesce(a, b), func.coalesce(b, a))
    return func.greatest(a, b)


def metadata_equals(name: str, column: Any, key: str, value: Any) -> ColumnElement[bool]:
    """Match events whose metadata[key] equals value, JSON types agreeing (a missing key equals None)."""
    if name == POSTGRESQL:
        # metadata is JSON text; jsonb equality compares numbers by value and keeps true != 1.
        item = cast(column, JSONB)[key]
        if value is None:
            return or_(item.is_(None), item == cast(literal("null"), JSONB))
        return item == cast(literal(json.dumps(value)), JSONB)
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


def _like_pattern(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains(name: str, text: str, *, fts: bool) -> ColumnElement[bool]:
    """Match events whose label or stream_data contains text, case-insensitively."""
    pattern = _like_pattern(text)
    if name == POSTGRESQL:
        # ILIKE '%x%' is what the pg_trgm GIN indexes of migration 0003 serve (BitmapOr of the two).
        return or_(events.c.label.ilike(pattern, escape="\\"),
                   events.c.stream_data.ilike(pattern, escape="\\"))
    if fts and len(text) >= 3:
        # The trigram tokenizer answers a quoted phrase as a case-insensitive substring match; it needs
        # at least three characters, so shorter needles fall back to LIKE. The index covers the rows up
        # to the watermark (migration 0005); the few newer rows are scanned with LIKE, so the answer is
        # exact and complete whether or not the writer has indexed them yet.
        phrase = '"' + text.replace('"', '""') + '"'
        matches = sql_text(
            f"SELECT rowid FROM events_fts WHERE events_fts MATCH :fts_phrase AND rowid <= ({_WATERMARK}) "
            f"UNION ALL SELECT rowid FROM events WHERE rowid > ({_WATERMARK}) "
            "AND (label LIKE :fts_like ESCAPE '\\' OR stream_data LIKE :fts_like ESCAPE '\\')"
        ).bindparams(fts_phrase=phrase, fts_like=pattern)
        return literal_column("events.rowid").in_(matches)
    # SQLite's LIKE is case-insensitive for ASCII.
    return or_(events.c.label.like(pattern, escape="\\"), events.c.stream_data.like(pattern, escape="\\"))
