"""StoreFollower: an exporter's worker that reads what the primary store committed after its cursor."""

from __future__ import annotations

from typing import Any, Literal

from ..errors import ValidationError
from ..events import now_ms
from ..store.base import ChangeLog
from .backoff import Backoff
from .base import Exporter
from .breaker import CircuitBreaker
from .delivery import Batch, DeliveryWorker, describe, logger


class StoreFollower(DeliveryWorker):
    """Follow a ChangeLog store: read committed events after the persisted cursor, export, save the cursor.

    The cursor is saved after each delivered batch, so a crash re-sends at most the batch in flight
    (receivers de-duplicate by event_id) and a restart continues where the last run stopped.

    Args:
        exporter: the destination.
        log: the primary store (anything implementing store.base.ChangeLog).
        batch_size: events per export() call (default: the exporter's batch_size).
        backoff, breaker: retry delays and the circuit breaker (defaults: Backoff(), CircuitBreaker()).
        poll_interval_s: how often to look for new events when nobody calls notify().
        start_at: where an exporter that never saved a cursor begins: "end" (events committed from
            now on; the position is saved at once) or "beginning" (everything the store still holds).
    """

    mode = "follow"

    def __init__(self, exporter: Exporter, log: ChangeLog, *, batch_size: int | None = None,
                 backoff: Backoff | None = None, breaker: CircuitBreaker | None = None,
                 poll_interval_s: float = 1.0, start_at: Literal["end", "beginning"] = "end") -> None:
        super().__init__(exporter, batch_size=batch_size, backoff=backoff, breaker=breaker,
                         poll_interval_s=poll_interval_s)
        if not isinstance(log, ChangeLog):
            raise ValidationError("store", "a store with a change log (SQLite, PostgreSQL or memory)", log)
        if start_at not in ("end", "beginning"):
            raise ValidationError("start_at", "'end' or 'beginning'", start_at)
        self.log, self.start_at = log, start_at
        self.cursor: int | None = None  # everything at or below it was delivered
        self._saved: int | None = None  # the position last persisted by this worker
        self._committed: int | None = None
        self._started_ms = 0  # when start() ran: where a cursor pinned late begins (position_before)

    def start(self) -> None:
        """Load (or, on a first start, pin) the cursor, then start the thread."""
        self._started_ms = now_ms()
        try:
            self._load_cursor(late=False)
        except Exception as exc:  # the store is busy or down: the thread loads it once it can
            self.last_error = describe(exc)
            logger.warning("exporter %s: cannot read its cursor yet: %s", self.name, self.last_error)
        super().start()

    def _load_cursor(self, *, late: bool) -> None:
        saved = self.log.load_cursor(self.name)
        if saved is None:
            if self.start_at == "beginning":
                saved = 0
            elif late:
                # start() could not pin it (the store was busy or down), and the writer may have
                # committed since: begin below the first event stamped after start(), not at the end.
                saved = self.log.position_before(self._started_ms)
            else:  # pinned now, on the caller's thread: events committed after start() are never skipped
                saved = self.log.committed_position()
            self.log.save_cursor(self.name, saved)
        self.cursor = self._saved = saved

    def _next_batch(self) -> Batch:
        if self.cursor is None:
            self._load_cursor(late=True)
        assert self.cursor is not None
        top = self.log.committed_position()
        self._committed = top
        persisted = self.log.load_cursor(self.name)
        # Deleting the newest rows lowers the persisted cursor (changelog.clamp_cursors) because new
        # rows can take their positions again: follow it down, and never stay above the newest row.
        if persisted is not None and self._saved is not None and persisted < self._saved:
            self.cursor = self._saved = persisted
        if top < self.cursor:
            self.cursor = top
        if top <= self.cursor:
            return []
        rows = self.log.read_committed(self.cursor, self.batch_size)
        return [(position, event) for position, event in rows]

    def _delivered(self, batch: Batch) -> None:
        last = batch[-1][0]
        assert last is not None
        self.cursor = last  # first in memory: a failed save must not make the batch go out again
        self.log.save_cursor(self.name, last)
        self._saved = last

    def _pending(self) -> int:
        if self.cursor is None:
            return 0
        try:
            return max(0, self.log.committed_position() - self.cursor)
        except Exception:  # status must not raise; the lag is unknown
            return 0

    def status(self) -> dict[str, Any]:
        """Counters plus cursor, committed position and lag (positions; events, less any deleted since)."""
        out = super().status()
        committed: int | None
        try:
            committed = self.log.committed_position()
        except Exception as exc:
            committed = None
            if not self._stop.is_set():  # after shutdown the store is closed: not the destination's error
                out["last_error"] = out["last_error"] or describe(exc)
        out.update(cursor=self.cursor, committed=committed,
                   lag=max(0, committed - self.cursor) if committed is not None and self.cursor is not None
                   else None)
        return out
