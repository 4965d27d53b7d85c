"""The CLI side of ad-hoc read-only SQL: its options, and printing what the store's run_readonly_sql answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..store.adhoc_sql import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_S,
    AdhocSqlError,
    SqlLimits,
    SqlResult,
)
from ..store.base import AdhocSql
from .context import EXIT_INTERRUPTED, require_existing_db, resolve_store

F = TypeVar("F", bound=Callable[..., Any])


def sql_options(command: F) -> F:
    """Add --timeout, --max-rows and --allow-superuser (they apply to the SQL argument only)."""
    command = click.option("--allow-superuser", is_flag=True,
                           help="SQL: run even when connected to PostgreSQL as a superuser.")(command)
    command = click.option("--max-rows", type=click.IntRange(1), default=DEFAULT_MAX_ROWS, show_default=True,
                           help="SQL: return at most this many rows (the rest are cut, with a note).")(command)
    command = click.option("--timeout", "sql_timeout", type=click.FloatRange(0.001), default=DEFAULT_TIMEOUT_S,
                           show_default=True, metavar="SECONDS",
                           help="SQL: stop the statement after this many seconds.")(command)
    return command


def run_readonly_sql(sql: str, sql_timeout: float = DEFAULT_TIMEOUT_S, max_rows: int = DEFAULT_MAX_ROWS,
                     allow_superuser: bool = False) -> SqlResult:
    """Run one read-only statement on the selected database; refusals exit 1, Ctrl-C exits 130."""
    limits = SqlLimits(timeout_s=sql_timeout, max_rows=max_rows, allow_superuser=allow_superuser)
    store = resolve_store()
    if not isinstance(store, AdhocSql):
        raise click.ClickException("the configured store is not a SQL database")
    require_existing_db(store)
    try:
        result = store.run_readonly_sql(sql, limits)
    except AdhocSqlError as exc:
        if exc.reason == "interrupted":
            click.echo(f"Error: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        raise click.ClickException(str(exc)) from None
    if result.truncated:
        click.echo(f"note: the result was cut at {len(result.rows):,} rows (--max-rows, or over "
                   "256 MiB of text); narrow the query or aggregate", err=True)
    return result
