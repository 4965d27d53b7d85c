"""Ad-hoc read-only SQL (`telemetry query "SELECT …"`): no side effects, bounded time, rows and memory.

"Read-only" has to hold against a user's own typo and against a statement pasted from elsewhere:

- SQLite: the file is opened through a `mode=ro` URI with `query_only` on, and an authorizer refuses
  ATTACH/DETACH (which `VACUUM INTO` uses to write a new file), schema changes, writes, PRAGMAs that
  set or do something, and functions with side effects (load_extension, writefile …).
- PostgreSQL: a READ ONLY transaction with `statement_timeout`, the statement run through a cursor
  (`DECLARE … CURSOR FOR`, so one SELECT-like statement only: no `; COPY … TO PROGRAM`), and a refusal
  to run as a superuser, whose SELECTs may still call server-side functions with side effects.
- Both: only SELECT-like statements, a statement timeout (a never-ending recursive CTE stops), a cap on
  rows and bytes returned, and Ctrl-C that stops the statement in the database, not only the client.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal

from ..errors import TelemetryError

DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_MAX_ROWS: Final = 100_000
# Text and blobs returned, summed: past this the result is cut (rows are held in memory to be printed).
MAX_RESULT_BYTES: Final = 256 * 1024 * 1024
# SQLite: the largest string or blob one expression may build, and the heap the statement may use.
MAX_VALUE_BYTES: Final = 64 * 1024 * 1024
SQLITE_HEAP_LIMIT: Final = 1024 * 1024 * 1024
# The progress handler runs every this many SQLite virtual-machine steps (about a millisecond).
PROGRESS_STEPS: Final = 10_000
FETCH_BATCH: Final = 1000

SQLITE_STATEMENTS: Final = frozenset({"select", "with", "values", "explain", "pragma"})
PG_STATEMENTS: Final = frozenset({"select", "with", "values", "table"})
# PRAGMAs that only report; any other PRAGMA (and any PRAGMA given a value to set) is refused.
READ_PRAGMAS: Final = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "database_list", "collation_list", "function_list", "module_list", "pragma_list",
    "compile_options", "user_version", "schema_version", "application_id", "page_count", "page_size",
    "freelist_count", "encoding", "journal_mode", "integrity_check", "quick_check", "foreign_key_check",
    "data_version", "max_page_count", "auto_vacuum", "cache_size", "busy_timeout", "query_only",
})
# Pragmas whose argument names a table or index rather than setting a value.
ARGUMENT_PRAGMAS: Final = frozenset({"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                                     "index_xinfo", "foreign_key_list", "integrity_check", "quick_check",
                                     "foreign_key_check"})
UNSAFE_FUNCTIONS: Final = frozenset({"load_extension", "writefile", "readfile", "edit", "fts3_tokenizer",
                                     "zipfile", "sqlar_compress", "sqlar_uncompress", "shell", "system",
                                     "sqlite_dbpage", "readline", "lsmode"})
_ALLOWED_ACTIONS: Final = frozenset({sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE,
                                     sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_PRAGMA})
# The authorizer's action codes by name (sqlite3 also exports result codes that share their numbers).
_ACTION_NAMES: Final = {getattr(sqlite3, f"SQLITE_{n}"): n for n in (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE", "DROP_INDEX", "DROP_TABLE",
    "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER",
    "DROP_VIEW", "INSERT", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX",
    "ANALYZE", "CREATE_VTABLE", "DROP_VTABLE", "SAVEPOINT") if hasattr(sqlite3, f"SQLITE_{n}")}
_LEADING: Final = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.S)

Reason = Literal["refused", "timeout", "interrupted", "memory", "failed"]


class AdhocSqlError(TelemetryError):
    """Ad-hoc SQL that was refused, ran past its timeout, was interrupted, needed too much memory or failed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """How long a statement may run, how much it may return, and whether a superuser may run it."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rows: int = DEFAULT_MAX_ROWS
    allow_superuser: bool = False


@dataclass(slots=True)
class SqlResult:
    """Column names and rows; `truncated` says the row or byte cap cut the result."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False


@dataclass(slots=True)
class _Run:
    """What one statement's guards saw: deadline passed, Ctrl-C, the first refused action."""

    deadline: float
    timed_out: bool = False
    interrupted: bool = False
    denied: list[str] = field(default_factory=list)


def first_keyword(sql: str) -> str:
    """Return the statement's first keyword in lower case, past comments and opening parentheses."""
    rest = sql[_LEADING.match(sql).end():]  # type: ignore[union-attr]
    match = re.match(r"[A-Za-z_]+", rest)
    return match.group(0).lower() if match else ""


def check_statement(sql: str, allowed: frozenset[str]) -> None:
    """Refuse anything but the SELECT-like statements in `allowed`, naming what was given."""
    keyword = first_keyword(sql)
    if keyword not in allowed:
        shown = keyword.upper() or repr(sql.strip()[:20])
        raise AdhocSqlError("refused", f"{shown} is not allowed: ad-hoc SQL is read-only "
                            f"({', '.join(sorted(k.upper() for k in allowed))} statements only)")


@contextmanager
def interrupt_on_sigint(cancel: Callable[[], Any], run: _Run) -> Iterator[None]:
    """While the block runs, Ctrl-C cancels the statement in the database (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        run.interrupted = True
        cancel()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _fetch(fetchmany: Callable[[int], list[Any]], limits: SqlLimits) -> tuple[list[tuple[Any, ...]], bool]:
    rows: list[tuple[Any, ...]] = []
    size = 0
    while True:
        batch = fetchmany(FETCH_BATCH)
        if not batch:
            return rows, False
        for row in batch:
            if len(rows) >= limits.max_rows:
                return rows, True
            size += sum(len(v) for v in row if isinstance(v, str | bytes))
            if size > MAX_RESULT_BYTES:
                return rows, True
            rows.append(tuple(row))


# -- SQLite -------------------------------------------------------------------------------------------

def _sqlite_authorizer(run: _Run) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in UNSAFE_FUNCTIONS:
                run.denied.append(f"the function {arg2}()")
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name not in READ_PRAGMAS or (arg2 is not None and name not in ARGUMENT_PRAGMAS):
                run.denied.append(f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else ""))
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        # SQLite checks its own schema table while preparing some reads (table-valued pragmas).
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_temp_master"):
            return sqlite3.SQLITE_OK
        run.denied.append(_ACTION_NAMES.get(action, f"action {action}") + (f" {arg1}" if arg1 else ""))
        return sqlite3.SQLITE_DENY

    return authorize


def run_sqlite(path: str | Path, sql: str, limits: SqlLimits = SqlLimits()) -> SqlResult:
    """Run one read-only statement on a SQLite file; raise AdhocSqlError when refused or stopped."""
    check_statement(sql, SQLITE_STATEMENTS)
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    run = _Run(deadline=time.monotonic() + limits.timeout_s)
    previous_heap = None
    try:
        conn.execute("PRAGMA query_only = ON")
        # The heap limit is process-wide: set for this statement, put back afterwards.
        row = conn.execute("PRAGMA hard_heap_limit").fetchone()  # no row before SQLite 3.31
        if row is not None:
            previous_heap = row[0]
            conn.execute(f"PRAGMA hard_heap_limit = {SQLITE_HEAP_LIMIT}")
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_sqlite_authorizer(run))

        def progress() -> int:
            if run.interrupted:
                return 1
            if time.monotonic() > run.deadline:
                run.timed_out = True
                return 1
            return 0

        conn.set_progress_handler(progress, PROGRESS_STEPS)
        with interrupt_on_sigint(conn.interrupt, run):
            try:
                cursor = conn.execute(sql)
                columns = [d[0] for d in cursor.description or ()]
                rows, truncated = _fetch(cursor.fetchmany, limits)
            except MemoryError:
                raise AdhocSqlError("memory", f"the statement needed more than {SQLITE_HEAP_LIMIT >> 20} MiB "
                                    "of memory; narrow it (WHERE, LIMIT) or aggregate") from None
            except sqlite3.Error as exc:
                raise _sqlite_error(exc, run, limits) from None
        return SqlResult(columns, rows, truncated)
    finally:
        conn.set_authorizer(None)
        conn.set_progress_handler(None, 0)
        if previous_heap is not None:
            conn.execute(f"PRAGMA hard_heap_limit = {int(previous_heap)}")
        conn.close()


def _sqlite_error(exc: sqlite3.Error, run: _Run, limits: SqlLimits) -> Exception:
    if run.interrupted:
        return AdhocSqlError("interrupted", "interrupted: the statement was stopped")
    if run.timed_out:
        return AdhocSqlError("timeout", f"the statement ran past the {limits.timeout_s:g} s timeout "
                             "(--timeout) and was stopped")
    text = " ".join(str(exc).split())
    if run.denied or "not authorized" in text:
        what = run.denied[0] if run.denied else "this statement"
        return AdhocSqlError("refused", f"{what} is not allowed: ad-hoc SQL is read-only")
    if "too big" in text or "nomem" in text.lower() or "out of memory" in text:
        return AdhocSqlError("memory", f"the statement built a value or result too large ({text})")
    return exc


# -- PostgreSQL ---------------------------------------------------------------------------------------

def run_postgres(engine: Any, sql: str, limits: SqlLimits = SqlLimits()) -> SqlResult:
    """Run one read-only statement on PostgreSQL (SQLAlchemy engine); refuse superusers unless allowed."""
    check_statement(sql, PG_STATEMENTS)
    run = _Run(deadline=time.monotonic() + limits.timeout_s)
    with engine.connect() as connection:
        user, superuser = connection.exec_driver_sql(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").one()
        connection.rollback()
        if superuser and not limits.allow_superuser:
            raise AdhocSqlError("refused", f"refusing to run ad-hoc SQL as the superuser {user!r}: a "
                                "superuser's SELECT can read files and run programs on the server. Connect "
                                "as a read-only role, or pass --allow-superuser")
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(limits.timeout_s * 1000))}")
        dbapi = connection.connection.dbapi_connection
        try:
            with interrupt_on_sigint(dbapi.cancel, run):
                # stream_results: a server-side cursor, `DECLARE … CURSOR FOR <one query>`, so rows
                # arrive in batches and a second statement after `;` is a syntax error.
                result = connection.execution_options(stream_results=True).exec_driver_sql(sql)
                columns = list(result.keys()) if result.returns_rows else []
                rows, truncated = _fetch(result.fetchmany, limits) if result.returns_rows else ([], False)
        except Exception as exc:
            raise _postgres_error(exc, run, limits) from None
        finally:
            connection.rollback()
    return SqlResult(columns, rows, truncated)


def _postgres_error(exc: Exception, run: _Run, limits: SqlLimits) -> Exception:
    original = getattr(exc, "orig", exc)
    text = " ".join(str(original).split())
    if run.interrupted:
        return AdhocSqlError("interrupted", "interrupted: the statement was cancelled on the server")
    if "statement timeout" in text:
        return AdhocSqlError("timeout", f"the statement ran past the {limits.timeout_s:g} s timeout "
                             "(--timeout) and was cancelled on the server")
    if "read-only transaction" in text:
        return AdhocSqlError("refused", f"{text.split(' LINE ')[0]}: ad-hoc SQL is read-only")
    return exc


def failed(exc: BaseException) -> AdhocSqlError:
    """The database's own error (syntax, unknown table, no connection) as AdhocSqlError("failed"), one line."""
    return AdhocSqlError("failed", f"SQL failed: {' '.join(str(getattr(exc, 'orig', None) or exc).split())}")
