"""Kept for older imports: the SQLite / PostgreSQL differences now live in `store/sql/dialect.py`."""

from __future__ import annotations

from .sql.dialect import (
    POSTGRESQL,
    SQLITE,
    apply_sqlite_pragmas,
    check_sqlite_file,
    for_url,
    make_engine,
    sqlite_path,
    to_url,
)

__all__ = ["POSTGRESQL", "SQLITE", "apply_sqlite_pragmas", "check_sqlite_file", "for_url", "make_engine",
           "sqlite_path", "to_url"]
