"""A generic background batch worker: bounded queue, one daemon thread, flush, shutdown, fork safety."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from . import lifecycle

logger = logging.getLogger("vibekit_telemetry")

Policy = Literal["block", "drop_newest", "drop_oldest"]
POLICIES: Final = ("block", "drop_newest", "drop_oldest")
# Group commit: how long a commit may wait for batches that producers announced (expect()) but have not
# queued yet. A durable HTTP request waits for its commit anyway; one commit of the batches of several
# requests costs less than one commit each (bench/bench_durable_http.py), and while the writer waits,
# the thread preparing those batches has the GIL to itself.
GATHER_S: Final = 0.002


def _size(item: Any) -> int:
    """How many events a queued item holds (a ticket of processed events holds several)."""
    events = getattr(item, "events", None)
    return len(events) if isinstance(events, list) else 1


class Arrival:
    """A batch a producer announced (BatchWorker.expect()); done() once it is queued or abandoned."""

    __slots__ = ("_worker",)

    def __init__(self, worker: BatchWorker) -> None:
        self._worker: BatchWorker | None = worker

    def done(self) -> None:
        """The batch is queued (or will not come): the writer stops waiting for it. Safe to call twice."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker._arrived()


class _FlushMarker:
    """Put in the queue by flush(); set once everything queued before it has been processed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


@dataclass(slots=True)
class WorkerStats:
    """Counters a worker keeps; read them through BatchWorker.stats()."""

    processed: int = 0
    batches: int = 0
    dropped_newest: int = 0
    dropped_oldest: int = 0
    dropped_block_timeout: int = 0
    dropped_at_shutdown: int = 0
    dropped_memory: int = 0  # refused because the queue held memory_limit's worth of events
    batch_errors: int = 0
    last_batch_ms: float = 0.0
    total_batch_ms: float = 0.0
    max_batch_ms: float = 0.0


class BatchWorker:
    """Queue items from any thread; a daemon thread hands them to `process` in batches."""

    def __init__(self, process: Callable[[list[Any]], None], *, batch_size: int = 50,
                 interval_s: float = 1.0, max_batch: int = 5000, max_queue: int = 100_000,
                 policy: Policy = "block", block_timeout_s: float = 0.1,
                 name: str = "vibekit-telemetry-writer", target_batch_ms: float | None = None,
                 backpressure_threshold: float = 0.8, gather_s: float | None = None) -> None:
        """Create and start the worker.

        Args:
            process: called on the worker thread with each batch; exceptions are logged and counted.
            batch_size: wake the thread as soon as this many items wait.
            interval_s: otherwise wake it this often.
            max_batch: hand at most this many items to one `process` call.
            max_queue: items allowed to wait; past it `policy` applies.
            policy: block (up to block_timeout_s, then drop the new item), drop_newest or drop_oldest.
            block_timeout_s: how long `submit` may block under the block policy.
            name: the thread's name.
            target_batch_ms: adaptive batching (seed 002): when a batch takes longer, the next ones get
                smaller (down to batch_size); when batches run well under it, they grow back to max_batch.
            backpressure_threshold: with adaptive batching, once the queue holds more than this fraction of
                max_queue the next batches are max_batch whatever the latency, to drain it before
                producers are blocked or dropped (seed 002's backpressure threshold).
            gather_s: group commit, how long a commit may wait for announced batches (expect()); default
                GATHER_S. 0 with a writer process, where the next requests are handled while a commit runs.
        """
        if not 0.0 < backpressure_threshold <= 1.0:
            raise ValueError(f"backpressure_threshold: expected a fraction in (0, 1], got {backpressure_threshold!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
        self._process = process
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._batch_limit = max_batch  # the adaptive bound, between batch_size and max_batch
        self._target_batch_ms = target_batch_ms
        self._threshold = backpressure_threshold
        self.gather_s = GATHER_S if gather_s is None else gather_s
        self.drain_batches = 0  # batches made max size because the queue passed the threshold
        self._max_queue = max_queue  # the bound in force: the configured one, or less under memory_limit
        self._configured_queue = max_queue
        self._policy: Policy = policy
        self._block_timeout_s = block_timeout_s
        self._name = name
        self.stats = WorkerStats()
        self._setup_threading()
        # Rebuild the thread in a forked child: threads do not survive fork, and the parent's
        # queued items are the parent's to write. One process-wide hook (lifecycle) holds it weakly.
        lifecycle.on_fork(self)

    def _setup_threading(self) -> None:
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        # Every lock is new in a forked child: one copied while another parent thread held it would
        # stay held for ever.
        self._space = threading.Condition(threading.Lock())
        self._stats_lock = threading.Lock()
        self._extra = 0  # events beyond one per queued batch item (submit_bulk), under _stats_lock
        self._bulk: dict[int, int] = {}  # id -> events of each queued batch item, under _stats_lock
        self._incoming = 0  # batches announced by expect() and not yet queued, under _stats_lock
        self._shutdown = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def after_fork_in_child(self) -> None:
        """In a forked child: a new thread, new locks, an empty queue (the parent writes its own items)."""
        if self._shutdown:
            return  # a worker shut down in the parent stays shut down in the child
        self.stats = WorkerStats()
        self._setup_threading()

    # -- called from application threads ------------------------------------------------------

    def submit(self, item: Any) -> bool:
        """Queue one item; return False when it was dropped (queue full or worker shut down)."""
        queue = self._queue
        if self._shutdown:
            return False
        depth = len(queue)
        if depth >= self._max_queue and not self._make_room():
            return False
        queue.append(item)
        # Event.set() takes a lock and notifies: only pay for it when the writer is not already woken
        # (until the writer gets the GIL, every submit past batch_size would otherwise set it again).
        if depth >= self._batch_size - 1 and not self._wake.is_set():
            self._wake.set()
        return True

    def expect(self) -> Arrival:
        """Announce a batch about to be queued (an ingest request being parsed): a commit may wait for it.

        Call done() on the result once the batch is submitted or abandoned. The writer waits at most
        GATHER_S, and only while announced batches are on their way: an idle server adds no latency.
        """
        with self._stats_lock:
            self._incoming += 1
        return Arrival(self)

    def _arrived(self) -> None:
        with self._stats_lock:
            self._incoming -= 1
        if self._incoming == 0:
            self._wake.set()

    def set_bound(self, events: int) -> None:
        """Bound the queue below its configured size (memory_limit); max_queue again once it allows."""
        self._max_queue = max(1, min(self._configured_queue, events))

    def _reason(self, counter: str) -> str:
        """A drop while memory_limit lowered the bound is counted as memory's, whatever the policy."""
        return "dropped_memory" if self._max_queue < self._configured_queue else counter

    def _make_room(self) -> bool:
        if self._policy == "drop_newest":
            self._count_drop(self._reason("dropped_newest"))
            return False
        if self._policy == "drop_oldest":
            try:
                oldest = self._queue.popleft()
            except IndexError:
                return True
            if isinstance(oldest, _FlushMarker) or _size(oldest) > 1:
                # Never drop a flush request, nor a batch someone waits on: keep it, drop the new item.
                self._queue.appendleft(oldest)
                self._count_drop(self._reason("dropped_newest"))
                return False
            self._count_drop(self._reason("dropped_oldest"))
            return True
        deadline = time.monotonic() + self._block_timeout_s
        self._wake.set()
        with self._space:
            while self.depth() >= self._max_queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutdown:
                    self._count_drop(self._reason("dropped_block_timeout"))
                    return False
                self._space.wait(remaining)
        return True

    def submit_bulk(self, item: Any, size: int, *, urgent: bool = False) -> bool:
        """Queue one item that holds `size` events (a batch); the queue bound counts its events.

        All of it or none: under drop_newest and drop_oldest a batch that does not fit is refused
        (nothing queued is evicted for it); under block the caller waits up to block_timeout for room.
        urgent wakes the writer now (someone waits for the commit).
        """
        if self._shutdown:
            return False
        if size > self._max_queue or (self.depth() + size > self._max_queue and not self._room_for(size)):
            self._count_drop(self._reason("dropped_block_timeout" if self._policy == "block" else "dropped_newest"),
                             size)
            return False
        with self._stats_lock:
            self._extra += size - 1
            self._bulk[id(item)] = size
        self._queue.append(item)
        if urgent or self.depth() >= self._batch_size:
            self._wake.set()
        return True

    def _room_for(self, size: int) -> bool:
        if self._policy != "block":
            return False
        deadline = time.monotonic() + self._block_timeout_s
        self._wake.set()
        with self._space:
            while self.depth() + size > self._max_queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._shutdown:
                    return False
                self._space.wait(remaining)
        return True

    def _count_drop(self, counter: str, n: int = 1) -> None:
        # Only on the full-queue path: `+=` on an attribute is not atomic between threads, and every
        # drop must be counted.
        with self._stats_lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + n)

    def depth(self) -> int:
        """Return how many events wait in the queue (a batch counts for its events)."""
        return len(self._queue) + self._extra

    def capacity(self) -> int:
        """Return the queue's bound."""
        return self._max_queue

    def is_alive(self) -> bool:
        """Return whether the worker thread runs."""
        return self._thread.is_alive()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is processed; False on timeout."""
        if not self._thread.is_alive():
            self._drain()
            return not self._queue
        if threading.current_thread() is self._thread:
            self._drain()
            return True
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Process what is queued and stop the thread; safe to call twice. False if time ran out."""
        if self._shutdown:
            return not self._thread.is_alive()
        self._shutdown = True
        self._wake.set()
        with self._space:
            self._space.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        finished = not self._thread.is_alive()
        # What is still queued now was either not reached in time, or appended by a producer that
        # passed the shutdown check just before the final drain: either way it will not be written.
        left = 0
        while finished and self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                left += _size(item)
                resolve = getattr(item, "resolve", None)
                if callable(resolve):  # someone waits for this item's commit: tell them it will not come
                    resolve("the writer stopped before this batch was committed")
        if not finished:
            left = sum(_size(item) for item in self._queue if not isinstance(item, _FlushMarker))
        self.stats.dropped_at_shutdown += left
        if left:
            logger.warning("telemetry writer stopped with %d events not written", left)
        return finished

    # -- the worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._shutdown:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._incoming > 0 and self.gather_s > 0:
                self._gather()
            self._drain()
        self._drain()

    def _gather(self) -> None:
        """Group commit: wait (up to GATHER_S) for announced batches, so one commit holds them all."""
        deadline = time.monotonic() + self.gather_s
        while self._incoming > 0 and self.depth() < self._batch_limit and not self._shutdown:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)
            self._wake.clear()

    def _drain(self) -> None:
        """Process everything queued, in batches of at most max_batch."""
        queue = self._queue
        while queue:
            if self._target_batch_ms is not None and self.depth() > self._threshold * self._max_queue:
                # Backpressure: the queue is close to full. Small batches would keep it full (and block or
                # drop producers); the largest batch drains it fastest per commit, whatever the latency.
                if self._batch_limit < self._max_batch:
                    self.drain_batches += 1
                self._batch_limit = self._max_batch
            batch: list[Any] = []
            markers: list[_FlushMarker] = []
            weight = 0
            try:
                while queue and weight < self._batch_limit:
                    item = queue.popleft()
                    if isinstance(item, _FlushMarker):
                        markers.append(item)
                        break  # items after a marker belong to the next batch
                    batch.append(item)
                    weight += 1
                    if self._bulk and id(item) in self._bulk:  # a batch item: its events count
                        with self._stats_lock:
                            size = self._bulk.pop(id(item))
                            self._extra -= size - 1
                        weight += size - 1
            except IndexError:
                pass
            self._notify_space()
            if batch:
                started = time.perf_counter()
                try:
                    self._process(batch)
                except Exception:
                    self.stats.batch_errors += 1
                    logger.exception("telemetry batch of %d events failed", len(batch))
                finally:
                    elapsed = (time.perf_counter() - started) * 1000
                    self.stats.batches += 1
                    self.stats.processed += len(batch)
                    self.stats.last_batch_ms = elapsed
                    self.stats.total_batch_ms += elapsed
                    if elapsed > self.stats.max_batch_ms:
                        self.stats.max_batch_ms = elapsed
                    self._adapt(len(batch), elapsed)
            for marker in markers:
                marker.done.set()

    def _adapt(self, size: int, elapsed_ms: float) -> None:
        """Tune the batch bound to the measured commit latency (halve when slow, grow by a quarter when fast)."""
        target = self._target_batch_ms
        if target is None:
            return
        if elapsed_ms > target:
            self._batch_limit = max(min(self._batch_size, self._max_batch), size // 2)
        elif elapsed_ms < target / 2 and size >= self._batch_limit:
            self._batch_limit = min(self._max_batch, self._batch_limit + max(1, self._batch_limit // 4))

    def batch_limit(self) -> int:
        """Return the current (adaptive) largest batch handed to one `process` call."""
        return self._batch_limit

    def _notify_space(self) -> None:
        if self._policy == "block":
            with self._space:
                self._space.notify_all()
