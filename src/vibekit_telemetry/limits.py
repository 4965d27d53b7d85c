"""Resource limits the writer enforces: free disk before a commit, memory held by queued events.

Both are cheap enough for the hot paths they guard: the disk check is one cached statvfs per
`disk_check_interval_ms`, and the memory bound is turned into a queue capacity in events (from the
measured size of events the writer processes), so `track()` pays one integer comparison for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence

from .errors import DiskFullError
from .events import TelemetryEvent

# What one queued event costs beyond its text: the raw dict or TelemetryEvent, its boxed numbers, ids
# and the queue's slot. Measured with tracemalloc: ~500 bytes for a small track() dict, ~220 for a
# track_stream chunk; processed events (tickets) carry more. Rounded up, so the bound errs on the safe side.
EVENT_OVERHEAD_BYTES = 1000


class DiskGuard:
    """Refuse a commit (DiskFullError, waited out by the writer) while free disk is below a minimum.

    statvfs is cached for `interval_s`, so a writer committing many batches a second asks the OS at
    most once per interval; a commit after space returns goes through within one interval.
    """

    def __init__(self, directory: str, min_free_mb: float, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory, self.min_free_mb, self.interval_s = directory, float(min_free_mb), interval_s
        self._clock = clock
        self._checked_at = float("-inf")
        self._free_mb: float | None = None
        self.checks = 0  # statvfs calls made (the cache's effect is visible in tests and health)
        self.holds = 0  # commit attempts refused for low disk (each is retried)

    def free_mb(self) -> float | None:
        """Free space in MB for unprivileged writers (None when the directory cannot be measured)."""
        now = self._clock()
        if now - self._checked_at >= self.interval_s:
            self._checked_at = now
            self.checks += 1
            try:
                stat = os.statvfs(self.directory)
                self._free_mb = stat.f_bavail * stat.f_frsize / 1_048_576
            except OSError:
                self._free_mb = None  # cannot tell: let SQLite say whether the write fits
        return self._free_mb

    def ensure(self) -> None:
        """Raise DiskFullError when free space is below the minimum; return otherwise."""
        free = self.free_mb()
        if free is not None and free < self.min_free_mb:
            self.holds += 1
            raise DiskFullError(f"{free:.1f} MB free in {self.directory}, below min_free_disk_mb "
                                f"({self.min_free_mb:g}); writes are held until space is freed")


def event_bytes(events: Sequence[TelemetryEvent]) -> float:
    """The estimated memory of processed events while queued: overhead plus their text, per event."""
    if not events:
        return 0.0
    total = 0
    for e in events:
        total += (len(e.stream_data or "") + len(e.label or "") + len(e.metadata_json or "")
                  + len(e.context_json or ""))
    return EVENT_OVERHEAD_BYTES + total / len(events)


class MemoryBudget:
    """`reliability.memory_limit` as a queue capacity: how many events of the measured size fit in it.

    The writer feeds it each batch it processed (update); the worker asks `capacity()` through its
    queue bound, and `over(depth)` tells the pipeline to spill rather than wait on a remote store.
    """

    def __init__(self, limit_bytes: int, max_queue: int) -> None:
        self.limit_bytes, self.max_queue = limit_bytes, max_queue
        self.avg_event_bytes = float(EVENT_OVERHEAD_BYTES)
        self._lock = threading.Lock()

    def update(self, events: Sequence[TelemetryEvent]) -> int:
        """Fold a processed batch's size into the average; return the queue capacity it gives."""
        if events:
            measured = event_bytes(events)
            with self._lock:  # a moving average: large events a while ago still weigh a little
                self.avg_event_bytes = 0.8 * self.avg_event_bytes + 0.2 * measured
        return self.capacity()

    def capacity(self) -> int:
        """Events that fit in memory_limit at the measured size (at least 1, at most max_queue)."""
        return max(1, min(self.max_queue, int(self.limit_bytes // self.avg_event_bytes)))

    def used_bytes(self, depth: int) -> int:
        """The estimated bytes `depth` queued events hold."""
        return int(depth * self.avg_event_bytes)
