"""Resource limits the writer enforces: free disk before a commit, memory held by queued events.

Both are cheap enough for the hot paths they guard: the disk check is one cached statvfs per
`disk_check_interval_ms`, and the memory bound is turned into a queue capacity in events (from the
measured size of events the writer processes), so `track()` pays one integer comparison for it.

`memory_limit` is one budget shared by every place that holds events in memory (MemoryShares): the
writer queue, the events the sample step holds for keep_errors, and the queues of exporters fed from
the bus (no change log). The last two are measured event by event (event_size), off the hot path. The
sample step's set of sessions seen (to count each once) has a share too, entry by entry.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import DiskFullError
from .events import TelemetryEvent

# What one queued event costs beyond its text: the raw dict or TelemetryEvent, its boxed numbers, ids
# and the queue's slot. Measured with tracemalloc: ~500 bytes for a small track() dict, ~220 for a
# track_stream chunk; processed events (tickets) carry more. Rounded up, so the bound errs on the safe side.
EVENT_OVERHEAD_BYTES = 1000
# The shares of memory_limit given to the sample step's held events, to the bus-fed exporters' queues
# (all of them together) and to the sample step's sessions seen, when they exist; the writer queue has
# the rest (at least 48 %). 2 % of memory_limit remembers ~4,700 session ids per 64 MB.
SAMPLER_SHARE: Final = 0.25
EXPORTERS_SHARE: Final = 0.25
SEEN_SHARE: Final = 0.02


@dataclass(frozen=True, slots=True)
class MemoryShares:
    """memory_limit split in bytes: the writer queue, the sampler's held events, every bus-fed exporter's
    queue, the sampler's sessions seen."""

    limit: int
    writer: int
    sampler: int  # 0: no sample step holds events (sample_rate 1, or keep_errors off)
    exporters: int  # all bus-fed exporters together; 0 when every exporter follows a store
    seen: int = 0  # the sample step's sessions seen; 0: no sampling (sample_rate 1)

    @classmethod
    def split(cls, limit: int, *, sampler: bool, bus_exporters: int, seen: bool = False) -> MemoryShares:
        """Give the sampler, the bus-fed exporters and the seen set their share when present; the writer the rest."""
        held = int(limit * SAMPLER_SHARE) if sampler else 0
        queued = int(limit * EXPORTERS_SHARE) if bus_exporters else 0
        remembered = max(1, int(limit * SEEN_SHARE)) if seen else 0
        return cls(limit, limit - held - queued - remembered, held, queued, remembered)


def _mapping_size(text: str | None, mapping: Mapping[str, Any] | None) -> int:
    if text is not None:
        return len(text)
    if not mapping:
        return 0
    # Before the encode step there is no JSON text: the length of each key and value's str is close enough.
    return sum(len(str(key)) + len(str(value)) + 8 for key, value in mapping.items())


def event_size(event: TelemetryEvent) -> int:
    """The estimated memory of one event held in a list or queue: overhead, text, metadata and context."""
    return (EVENT_OVERHEAD_BYTES + len(event.stream_data or "") + len(event.label or "")
            + _mapping_size(event.metadata_json, event.metadata) + _mapping_size(event.context_json, event.context))


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

    def __init__(self, limit_bytes: int, max_queue: int, *, shares: MemoryShares | None = None) -> None:
        self.limit_bytes, self.max_queue = limit_bytes, max_queue
        self.shares = shares or MemoryShares(limit_bytes, limit_bytes, 0, 0)
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
