"""SQLStore's writer metrics: one row per writer run (writer_runs table), upserted by the scheduler's job."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from ...errors import StoreError, TransientStoreError
from .._batch import writer_run_row
from ..schema import writer_runs

if TYPE_CHECKING:
    from .dialect_base import Dialect
    from .writer import Statements


class WriterRunMethods:
    """record_writer_run / writer_runs of SQLStore (a mixin): `telemetry health --detailed` reads them."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _closed: bool
        _statements: Statements
        _writer: Any
        sql: Dialect

        @property
        def engine(self) -> Engine:
            """The store's engine (SQLStore initialises on first use)."""

        def where(self) -> str:
            """Where the store lives, for messages."""

        def _transaction(self) -> AbstractContextManager[Any]:
            """The writer's cursor in one transaction (the caller holds the lock)."""

    def record_writer_run(self, run: dict[str, Any], timeout: float | None = None) -> None:
        """Insert or update one writer's metrics row (keyed by run_id), in its own short transaction.

        Missing counters are stored as 0, a missing updated_at as now and started_at as updated_at;
        started_at is kept from the first record of the run. timeout bounds the wait for the store
        (maintenance) and the database (another process's lock): TransientStoreError past it.
        """
        row = writer_run_row(run)
        self.engine  # noqa: B018 - initialise on first use
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise TransientStoreError(f"store {self.where()} is busy with maintenance")
        try:
            if self._closed:
                raise StoreError(f"store {self.where()} was shut down")
            st = self._statements
            writer = self._writer
            waits = self.sql.lock_wait_at_most(writer, deadline) if writer is not None else nullcontext()
            with waits, self._transaction() as cur:
                cur.execute(st.upsert_run, tuple(row[n[2:]] for n in st._run_names))
        finally:
            self._lock.release()

    def writer_runs(self, since_ms: int | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the writers' metrics rows updated at or after since_ms, the most recently updated first."""
        w = writer_runs.c
        stmt = select(writer_runs).order_by(w.updated_at.desc(), w.run_id.desc()).limit(limit)
        if since_ms is not None:
            stmt = stmt.where(w.updated_at >= since_ms)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]
