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
from ..limits import event_size
from .backoff import Backoff
from .base import Exporter
from .breaker import CircuitBreaker
from .delivery import Batch, DeliveryWorker


class BusFeed(DeliveryWorker):
    """Deliver the events offered by the writer after each commit, from a queue of at most `capacity`.

    offer() never blocks: when the queue is full the new events are dropped and counted, so a dead
    destination costs memory up to `capacity` events and never slows the writer. `max_bytes` (set from
    memory_limit by the runtime) bounds the queue's estimated memory too (limits.event_size, queued and
    in-flight events). Drops are counted by reason in `dropped_reasons`: queue_full (capacity),
    memory_limit (max_bytes), after_shutdown.
    """

    mode = "bus"

    def __init__(self, exporter: Exporter, *, capacity: int = 10_000, batch_size: int | None = None,
                 backoff: Backoff | None = None, breaker: CircuitBreaker | None = None,
                 poll_interval_s: float = 1.0, max_bytes: int | None = None) -> None:
        super().__init__(exporter, batch_size=batch_size, backoff=backoff, breaker=breaker,
                         poll_interval_s=poll_interval_s)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationError("capacity", "an integer >= 1", capacity)
        self.capacity = capacity
        self.max_bytes: int | None = None
        self.set_max_bytes(max_bytes)
        self.dropped = 0  # events offered while the queue was full, over max_bytes, or after shutdown
        self.dropped_reasons = {"queue_full": 0, "memory_limit": 0, "after_shutdown": 0}
        self._queue: deque[tuple[TelemetryEvent, int]] = deque()  # with each event's estimated size
        self._in_flight = 0
        self._queued_bytes = 0  # queued and in-flight events, estimated
        self._in_flight_bytes = 0
        self._lock = threading.Lock()

    def set_max_bytes(self, max_bytes: int | None) -> None:
        """Bound the queue's estimated memory (None: by capacity alone)."""
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise ValidationError("max_bytes", "an integer >= 1 (bytes) or None", max_bytes)
        self.max_bytes = max_bytes

    def offer(self, events: Sequence[TelemetryEvent]) -> int:
        """Queue committed events for delivery; return how many were taken (the rest are dropped, counted)."""
        with self._lock:
            if self._stop.is_set():
                taken, reason = 0, "after_shutdown"
            else:
                room = max(0, min(len(events), self.capacity - len(self._queue) - self._in_flight))
                taken, reason = room, "queue_full"
                for index in range(room):
                    event = events[index]
                    size = event_size(event)
                    if self.max_bytes is not None and self._queued_bytes + size > self.max_bytes:
                        taken, reason = index, "memory_limit"
                        break
                    self._queue.append((event, size))
                    self._queued_bytes += size
            lost = len(events) - taken
            self.dropped += lost
            self.dropped_reasons[reason] += lost
        if taken:
            self._wake.set()
        return taken

    def _next_batch(self) -> Batch:
        with self._lock:
            n = min(self.batch_size, len(self._queue))
            items = [self._queue.popleft() for _ in range(n)]
            batch: Batch = [(None, event) for event, _ in items]
            self._in_flight = n
            self._in_flight_bytes = sum(size for _, size in items)
        return batch

    def _delivered(self, batch: Batch) -> None:
        with self._lock:
            self._in_flight = 0
            self._queued_bytes -= self._in_flight_bytes
            self._in_flight_bytes = 0

    def queued_bytes(self) -> int:
        """The estimated memory of the queued and in-flight events."""
        with self._lock:
            return self._queued_bytes

    def _pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._in_flight

    def status(self) -> dict[str, Any]:
        """Counters plus queued events (the lag), capacity and drops."""
        out = super().status()
        out.update(cursor=None, committed=None, lag=self._pending(), capacity=self.capacity, dropped=self.dropped,
                   dropped_reasons=dict(self.dropped_reasons), queued_bytes=self.queued_bytes(),
                   max_bytes=self.max_bytes)
        return out
