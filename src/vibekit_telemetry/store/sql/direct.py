"""What a SQLStore does on its database without opening it as a store (no migration, no writer).

Schema versions for `telemetry db` (status, upgrade, downgrade: these must see the database as it is,
not as initialize() would leave it) and read-only ad-hoc SQL (`telemetry query "SELECT …"`,
store/adhoc_sql.py). Each call uses an engine of its own, disposed afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from .. import adhoc_sql, migrate
from .dialect import Dialect


class DirectAccess:
    """SQLStore's schema-version and ad-hoc SQL methods (a mixin: SQLStore sets these attributes)."""

    sql: Dialect
    url: str
    path: str | None
    busy_timeout_ms: int
    wal: bool

    @contextmanager
    def _schema_engine(self) -> Iterator[Engine]:
        if self.path is not None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        engine = self.sql.make_engine(self.url, busy_timeout_ms=self.busy_timeout_ms, wal=self.wal)
        try:
            yield engine
        finally:
            engine.dispose()

    def schema_version(self) -> str | None:
        """Return the database's schema version (None: not initialised), without migrating it."""
        with self._schema_engine() as engine:
            return migrate.current_version(engine)

    def schema_status(self) -> dict[str, Any]:
        """Return the current and head schema versions and the migrations still pending."""
        with self._schema_engine() as engine:
            return dict(migrate.status(engine))

    def upgrade_schema(self, to_version: str = "head") -> None:
        """Apply the migrations up to `to_version` (creating the database when it is new)."""
        with self._schema_engine() as engine:
            migrate.upgrade(engine, to_version)

    def downgrade_schema(self, to_version: str) -> None:
        """Roll the schema back to `to_version` ('base' removes every table)."""
        with self._schema_engine() as engine:
            migrate.downgrade(engine, to_version)

    def run_readonly_sql(self, sql: str, limits: adhoc_sql.SqlLimits | None = None) -> adhoc_sql.SqlResult:
        """Run one read-only statement with limits; AdhocSqlError when refused, stopped or failed."""
        return _RUNNERS[self.sql.name](self, sql, limits or adhoc_sql.SqlLimits())


def _on_sqlite(store: DirectAccess, sql: str, limits: adhoc_sql.SqlLimits) -> adhoc_sql.SqlResult:
    if store.path is None:
        raise adhoc_sql.AdhocSqlError("refused", "read-only SQL needs a database file, not an in-memory database")
    try:
        return adhoc_sql.run_sqlite(store.path, sql, limits)  # its own mode=ro connection, never the store's
    except sqlite3.Error as exc:
        raise adhoc_sql.failed(exc) from exc


def _on_postgres(store: DirectAccess, sql: str, limits: adhoc_sql.SqlLimits) -> adhoc_sql.SqlResult:
    with store._schema_engine() as engine:  # an engine of its own: the writer's pool is never used
        try:
            return adhoc_sql.run_postgres(engine, sql, limits)
        except SQLAlchemyError as exc:
            raise adhoc_sql.failed(exc) from exc


# The two runners differ in kind (a mode=ro file with an authorizer; a READ ONLY transaction through a
# server-side cursor), so each lives in store/adhoc_sql.py whole, picked here by the dialect's name.
_RUNNERS: Final[dict[str, Callable[[DirectAccess, str, adhoc_sql.SqlLimits], adhoc_sql.SqlResult]]] = {
    "sqlite": _on_sqlite, "postgresql": _on_postgres}
