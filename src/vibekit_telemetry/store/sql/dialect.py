"""Everything that differs between SQLite and PostgreSQL, in one place: a Dialect strategy object.

The base and shared helpers are in dialect_base.py, each side in dialect_sqlite.py and dialect_pg.py;
this module picks one by URL and re-exports them, so callers import from here.

The rest of the SQL store asks its `Dialect` (chosen once from the URL by `for_url`) and never
compares dialect names itself.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ...errors import StoreError
from .dialect_base import (
    PG_WRITE_LOCK,
    POSTGRESQL,
    SQLITE,
    WRITER_CACHE_KB,
    Dialect,
    apply_sqlite_pragmas,
    check_sqlite_file,
    compile_positional,
    sqlite_path,
    to_url,
)
from .dialect_pg import PostgreSQLDialect
from .dialect_sqlite import SQLiteDialect

__all__ = [
    "PG_WRITE_LOCK",
    "POSTGRESQL",
    "SQLITE",
    "WRITER_CACHE_KB",
    "Dialect",
    "PostgreSQLDialect",
    "SQLiteDialect",
    "apply_sqlite_pragmas",
    "check_sqlite_file",
    "compile_positional",
    "for_url",
    "make_engine",
    "sqlite_path",
    "to_url",
]


_DIALECTS: Final[dict[str, Dialect]] = {SQLITE: SQLiteDialect(), POSTGRESQL: PostgreSQLDialect()}
# The driver each dialect is written for (psycopg 3's COPY and pipelines, the sqlite3 module's API), and
# what to write instead of another.
_DRIVERS: Final[dict[str, tuple[str, str]]] = {
    SQLITE: ("pysqlite", "use sqlite:/// or a file path"),
    POSTGRESQL: ("psycopg", "use postgresql:// or postgresql+psycopg:// (psycopg 3)"),
}


def for_url(url: str) -> Dialect:
    """Return the Dialect of a SQLAlchemy URL; StoreError for databases the store does not support."""
    parsed = make_url(url)
    found = _DIALECTS.get(parsed.get_backend_name())
    if found is None:
        raise StoreError(f"unsupported database URL {parsed!r}: expected sqlite or postgresql")
    driver, instead = _DRIVERS[parsed.get_backend_name()]
    if parsed.get_driver_name() != driver:
        raise StoreError(f"unsupported driver {parsed.get_driver_name()!r} in database URL {parsed!r}: {instead}")
    return found


def make_engine(url: str, *, busy_timeout_ms: int, wal: bool) -> Engine:
    """Create the engine of a database URL as the store configures it (for the CLI's schema commands)."""
    return for_url(url).make_engine(url, busy_timeout_ms=busy_timeout_ms, wal=wal)
