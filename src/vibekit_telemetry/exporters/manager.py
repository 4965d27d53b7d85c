"""ExporterSet: every exporter of a configuration, each on its own worker behind the primary store."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..store.base import ChangeLog
from .backoff import Backoff
from .base import Exporter
from .breaker import CircuitBreaker
from .bus import BusFeed
from .delivery import DeliveryWorker
from .follower import StoreFollower

if TYPE_CHECKING:
    from ..config import ReliabilityConfig, StorageConfig, TelemetryConfig

# Options of an exporter's storage entry that tune its worker, not the destination.
DELIVERY_OPTIONS: Final = frozenset({"retry_base_s", "retry_max_s", "failure_threshold", "open_timeout_s",
                                     "poll_interval_s", "start_at", "queue_size", "retry_attempts", "backoff",
                                     "jitter", "half_open_probes"})


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How one exporter's worker retries, pauses and starts (see docs/exporters.md).

    From a config, the defaults are the `reliability` section's (from_reliability); an exporter's own
    options override them one by one.
    """

    retry_base_s: float = 0.5
    retry_max_s: float = 30.0
    failure_threshold: int = 5
    open_timeout_s: float = 30.0
    poll_interval_s: float = 1.0
    start_at: Literal["end", "beginning"] = "end"
    queue_size: int = 10_000  # BusFeed only: events waiting when no store keeps a change log
    # Retries of one batch before the worker pauses for open_timeout_s (the breaker trips); the batch is
    # never skipped. None: only failure_threshold pauses.
    retry_attempts: int | None = None
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: bool = True
    half_open_probes: int = 1

    @classmethod
    def from_reliability(cls, rel: ReliabilityConfig) -> DeliveryOptions:
        """The defaults seed 001's `reliability` options give every exporter that does not set its own."""
        retry, breaker = rel.retry, rel.circuit_breaker
        return cls(retry_base_s=retry.base_ms / 1000, retry_max_s=max(retry.max_ms, retry.base_ms) / 1000,
                   backoff=retry.backoff, jitter=retry.jitter,
                   retry_attempts=(retry.max_attempts if retry.enabled else 0) if breaker.enabled else None,
                   # A disabled breaker never pauses a destination: it retries with backoff for ever.
                   failure_threshold=breaker.threshold if breaker.enabled else 1_000_000_000,
                   open_timeout_s=breaker.timeout / 1000, half_open_probes=breaker.half_open_probes)

    def backoff_policy(self) -> Backoff:
        """The Backoff these options describe."""
        rng = random.random if self.jitter else (lambda: 1.0)
        return Backoff(self.retry_base_s, self.retry_max_s, rng, linear=self.backoff == "linear")

    def breaker(self) -> CircuitBreaker:
        """A new CircuitBreaker with these options."""
        return CircuitBreaker(self.failure_threshold, self.open_timeout_s, half_open_probes=self.half_open_probes)

    @classmethod
    def split(cls, options: Mapping[str, Any], field: str,
              base: DeliveryOptions | None = None) -> tuple[DeliveryOptions, dict[str, Any]]:
        """Separate delivery options from the destination's own; validate them, naming `field.<key>`.

        Options not given keep `base`'s values (the reliability defaults), else the class defaults.
        """
        mine = {k: v for k, v in options.items() if k in DELIVERY_OPTIONS}
        rest = {k: v for k, v in options.items() if k not in DELIVERY_OPTIONS}
        base = base or cls()
        for key in ("retry_base_s", "retry_max_s", "open_timeout_s", "poll_interval_s"):
            value = mine.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ValidationError(f"{field}.{key}", "a number of seconds > 0", value)
        for key in ("failure_threshold", "queue_size", "half_open_probes"):
            value = mine.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValidationError(f"{field}.{key}", "an integer >= 1", value)
        value = mine.get("retry_attempts")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValidationError(f"{field}.retry_attempts", "an integer >= 0", value)
        if mine.get("start_at", "end") not in ("end", "beginning"):
            raise ValidationError(f"{field}.start_at", "'end' or 'beginning'", mine["start_at"])
        if mine.get("backoff", "exponential") not in ("exponential", "linear"):
            raise ValidationError(f"{field}.backoff", "'exponential' or 'linear'", mine["backoff"])
        if not isinstance(mine.get("jitter", True), bool):
            raise ValidationError(f"{field}.jitter", "true or false", mine["jitter"])
        merged = replace(base, **mine)
        if merged.retry_max_s < merged.retry_base_s:
            raise ValidationError(f"{field}.retry_max_s",
                                  f"a number of seconds >= retry_base_s ({merged.retry_base_s})", merged.retry_max_s)
        return merged, rest


class ExporterSet:
    """The exporters, each on its own daemon thread; the writer only ever calls notify()/on_committed().

    With a primary store that keeps a change log (store.base.ChangeLog: SQLite, PostgreSQL, memory)
    every exporter follows it by a persisted cursor (StoreFollower). Otherwise (no store, or a
    write-only custom one) each gets a bounded queue the writer feeds after each commit (BusFeed),
    which can lose events.

    Args:
        store: the primary store, or None.
        exporters: the destinations, with default delivery options; add() others with their own.
    """

    def __init__(self, store: Any | None, exporters: Sequence[Exporter] = (),
                 defaults: DeliveryOptions | None = None) -> None:
        self.store = store
        self.defaults = defaults or DeliveryOptions()
        self.workers: list[DeliveryWorker] = []
        for exporter in exporters:
            self.add(exporter)

    @classmethod
    def from_config(cls, config: TelemetryConfig, store: Any | None,
                    entries: list[StorageConfig] | None = None) -> ExporterSet:
        """Build the exporters of a config's storage entries (or `entries`, already read) of exporter types."""
        from .. import registry

        out = cls(store, defaults=DeliveryOptions.from_reliability(config.reliability))
        for i, entry in enumerate(config.storage_entries() if entries is None else entries):
            field = f"storage[{i}]"
            if registry.kind_of(entry.type, f"{field}.type") != "exporter":
                continue
            delivery, options = DeliveryOptions.split(entry.options, f"{field}.options", out.defaults)
            _, exporter = registry.build(entry.type, options, field=field)
            out.add(exporter, delivery, field=field)
        return out

    def add(self, exporter: Exporter, options: DeliveryOptions | None = None, *, field: str = "exporter") -> None:
        """Add one exporter with its delivery options (before start())."""
        if not isinstance(exporter, Exporter):
            raise ValidationError(field, "an exporter (name, batch_size, export, shutdown)", exporter)
        if any(w.name == exporter.name for w in self.workers):
            raise ValidationError(f"{field}.options.name", "a name no other exporter uses (it keys the cursor)",
                                  exporter.name)
        bind = getattr(exporter, "bind_store", None)
        if callable(bind):  # exporters that read sessions back (otlp: a trace per ended session)
            bind(self.store)
        o = options or self.defaults
        backoff, breaker = o.backoff_policy(), o.breaker()
        worker: DeliveryWorker
        if isinstance(self.store, ChangeLog):
            worker = StoreFollower(exporter, self.store, backoff=backoff, breaker=breaker,
                                   poll_interval_s=o.poll_interval_s, start_at=o.start_at)
        else:
            worker = BusFeed(exporter, capacity=o.queue_size, backoff=backoff, breaker=breaker,
                             poll_interval_s=o.poll_interval_s)
        worker.retry_attempts = o.retry_attempts
        self.workers.append(worker)

    def bus_feeds(self) -> list[BusFeed]:
        """The workers fed from the bus (no change log): the ones that hold events in memory."""
        return [worker for worker in self.workers if isinstance(worker, BusFeed)]

    def bound_memory(self, total_bytes: int) -> None:
        """Split `total_bytes` (memory_limit's exporter share) evenly between the bus-fed queues."""
        feeds = self.bus_feeds()
        for feed in feeds:
            feed.set_max_bytes(max(1, total_bytes // len(feeds)))

    def queued_bytes(self) -> int:
        """The estimated memory of every bus-fed queue (0 when every exporter follows a store)."""
        return sum(feed.queued_bytes() for feed in self.bus_feeds())

    def __len__(self) -> int:
        return len(self.workers)

    def start(self) -> None:
        """Start every worker (followers pin their cursor first)."""
        for worker in self.workers:
            worker.start()

    def notify(self) -> None:
        """Wake the followers: the writer committed a batch (never blocks)."""
        for worker in self.workers:
            worker.notify()

    def on_committed(self, events: Sequence[TelemetryEvent]) -> None:
        """After a commit: queue the events for bus-fed exporters, wake the followers (never blocks)."""
        for worker in self.workers:
            if isinstance(worker, BusFeed):
                worker.offer(events)
            else:
                worker.notify()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Give every worker the same `timeout` seconds (in parallel) to deliver; return whether all caught up."""
        deadline = time.monotonic() + max(0.0, timeout)
        for worker in self.workers:
            worker.begin_shutdown(timeout)
        return all([worker.wait_shutdown(deadline) for worker in self.workers])

    def status(self) -> list[dict[str, Any]]:
        """Return each exporter's status (name, mode, cursor, committed, lag, breaker, counters, last_error)."""
        return [worker.status() for worker in self.workers]
