"""BusFeed: an exporter's worker fed by the writer through a bounded queue, when no store keeps a change log.

This mode can lose events: those the queue has no room for (counted in `dropped`), and those still
queued when the process exits or shutdown's time runs out. With a SQLite or PostgreSQL store,
exporters follow the store instead (StoreFollower) and lose nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent
from .backoff import Backoff
from .base import Exporter
from .breaker import CircuitBreaker
from .delivery import Batch, DeliveryWorker


class BusFeed(DeliveryWorker):
    """Deliver the events offered by the writer after each commit, from a queue of at most `capacity`.

    offer() never blocks: when the queue is full the new events are dropped and counted, so a dead
    destination costs memory up to `capacity` events and never slows the writer.
    """

    mode = "bus"

    def __init__(self, exporter: Exporter, *, capacity: int = 10_000, batch_size: int | None = None,
                 backoff: Backoff | None = None, breaker: CircuitBreaker | None = None,
                 poll_interval_s: float = 1.0) -> None:
        super().__init__(exporter, batch_size=batch_size, backoff=backoff, breaker=breaker,
                         poll_interval_s=poll_interval_s)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationError("capacity", "an integer >= 1", capacity)
        self.capacity = capacity
        self.dropped = 0  # events offered while the queue was full, or after shutdown
        self._queue: deque[TelemetryEvent] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()

    def offer(self, events: Sequence[TelemetryEvent]) -> int:
        """Queue committed events for delivery; return how many were taken (the rest are dropped, counted)."""
        with self._lock:
            if self._stop.is_set():
                taken = 0
            else:
                taken = max(0, min(len(events), self.capacity - len(self._queue) - self._in_flight))
                self._queue.extend(events[:taken])
            self.dropped += len(events) - taken
        if taken:
            self._wake.set()
        return taken

    def _next_batch(self) -> Batch:
        with self._lock:
            n = min(self.batch_size, len(self._queue))
            batch: Batch = [(None, self._queue.popleft()) for _ in range(n)]
            self._in_flight = n
        return batch

    def _delivered(self, batch: Batch) -> None:
        with self._lock:
            self._in_flight = 0

    def _pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._in_flight

    def status(self) -> dict[str, Any]:
        """Counters plus queued events (the lag), capacity and drops."""
        out = super().status()
        out.update(cursor=None, committed=None, lag=self._pending(), capacity=self.capacity, dropped=self.dropped)
        return out
