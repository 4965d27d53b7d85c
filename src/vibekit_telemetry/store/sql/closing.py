"""SQLStore's flush and shutdown (a mixin), each also within a time limit (the TimeBounded capability).

A VACUUM, or a text-index step waiting on another process's lock, holds the store's lock for as long
as it runs; `Telemetry.flush(timeout)` and `shutdown(timeout)` must not wait for it past their time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .fork import LIVE

if TYPE_CHECKING:
    from .dialect_base import Dialect
    from .writer_process import WriterProcess

logger = logging.getLogger("vibekit_telemetry")


class ClosingMethods:
    """flush / flush_within / shutdown / shutdown_within of SQLStore."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _remote: WriterProcess | None
        _writer: Any
        _engine: Any
        _closed: bool
        sql: Dialect

        def where(self) -> str:
            """Where the store lives, for messages."""

        def _close_leases(self) -> None:
            """Release the replicas' job leases (ClusterMixin)."""

        def index_text(self, max_rows: int | None = None, *, deadline: float | None = None) -> int:
            """Bring the text index up to date (TextIndexMethods)."""

        def unindexed_rows(self) -> int:
            """Rows waiting for the text index (TextIndexMethods)."""

    def shutdown(self) -> None:
        """Close the writer and the engine; safe to call twice."""
        self.shutdown_within(None)

    def shutdown_within(self, timeout: float | None) -> bool:
        """shutdown(), within timeout seconds: False when maintenance still held the store (it closes with the process).

        A VACUUM or a text-index step waiting on another process's lock holds the store's lock; an
        application shutting down does not wait for it. What that job was doing is one transaction,
        which SQLite or PostgreSQL rolls back when the process exits mid-way.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        remote, self._remote = self._remote, None
        if remote is not None:
            # First: it finishes the batch in hand before the store goes.
            remote.close(10.0 if deadline is None else max(0.5, deadline - time.monotonic()))
        left = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=left):
            logger.warning("telemetry store %s: still busy with maintenance at shutdown; it closes with the process",
                           self.where())
            return False
        try:
            self._close()
        finally:
            self._lock.release()
        return True

    def _close(self) -> None:
        """Close the writer and the engine (the caller holds the lock)."""
        LIVE.discard(self)
        self._closed = True
        self._close_leases()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def flush(self) -> None:
        """Bring the text index up to date and checkpoint the SQLite WAL; PostgreSQL is already durable."""
        self.flush_within(None)

    def flush_within(self, timeout: float | None) -> bool:
        """flush(), within timeout seconds: False when maintenance or another process's lock kept it from finishing.

        The store's lock is waited for at most timeout (a VACUUM holds it for as long as it runs), and
        the text index's steps wait for another process's lock only for what is left of it.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        try:
            if self._writer is None:
                return True
            with self.sql.lock_wait_at_most(self._writer, deadline):
                try:
                    self.index_text(deadline=deadline)
                except Exception as exc:
                    if deadline is None or not self.sql.is_transient(exc):
                        raise
                    return False  # another process still holds the database: its lock outlasted ours
            self.sql.checkpoint(self._writer)  # PASSIVE: never waits for readers or writers
            return deadline is None or not self.unindexed_rows()
        finally:
            self._lock.release()
