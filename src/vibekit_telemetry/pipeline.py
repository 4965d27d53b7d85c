"""The commit stage on the writer thread: store processed events in the primary store, wait out locks, count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .emitter import Emitter
from .errors import DiskFullError, RefusedRowError, TransientStoreError, ValidationError
from .events import TelemetryEvent
from .exporters.backoff import Backoff
from .exporters.breaker import CircuitBreaker
from .limits import DiskGuard
from .spool import Spool
from .store.base import BatchResult, StorageProvider

logger = logging.getLogger("vibekit_telemetry")


@dataclass(slots=True)
class PipelineCounters:
    """What happened to processed events at the store (updated on the writer thread only)."""

    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    store_errors: int = 0
    retries: int = 0
    lost_after_retries: int = 0
    no_store: int = 0
    spool_full: int = 0
    spilled: int = 0  # events sent to the spool at once because the queue passed memory_limit
    last_commit_at: int | None = None
    last_commit_ms: float = 0.0
    last_error: str | None = None
    last_error_at: int | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class CommitOutcome:
    """What one commit did: whether the primary store took the batch, and which events it refused."""

    committed: bool
    stored: list[TelemetryEvent]
    refused_ids: set[str]


def is_transient(exc: BaseException) -> bool:
    """Return whether a store error is worth waiting out (a lock held by another process, a lost connection)."""
    if isinstance(exc, TransientStoreError):
        return True
    # Stores that do not raise the typed error yet: their lock errors still say so. A full disk is
    # waited out too: the app keeps running and writes resume once space is freed.
    text = str(exc).lower()
    return "locked" in text or "busy" in text or is_disk_full(exc)


def is_disk_full(exc: BaseException) -> bool:
    """Return whether a store failed because its disk is full (SQLITE_FULL, ENOSPC)."""
    if isinstance(exc, DiskFullError):
        return True
    text = str(exc).lower()
    return "disk is full" in text or "no space left" in text or "disk full" in text


def is_data_error(exc: BaseException) -> bool:
    """Return whether a store refused the rows themselves, so the other rows of the batch can still go in."""
    if isinstance(exc, RefusedRowError):
        return True
    # sqlite3 raises OverflowError for an int past 64 bits; psycopg raises DataError subclasses.
    return isinstance(exc, OverflowError | ValueError | TypeError) or any(
        cls.__name__ in ("IntegrityError", "DataError") for cls in type(exc).__mro__)


def _merge(parts: list[tuple[list[TelemetryEvent], BatchResult | None]]) -> BatchResult:
    merged = BatchResult()
    for events, result in parts:
        result = result if result is not None else BatchResult(stored=len(events))
        merged.stored += result.stored
        merged.duplicates += result.duplicates
        merged.rejected.extend(result.rejected)
    return merged


def _name(provider: object) -> str:
    return str(getattr(provider, "name", type(provider).__name__))


class WritePipeline:
    """Store one batch of processed events: the primary store decides; retries, bisection, counters."""

    def __init__(self, providers: Sequence[StorageProvider], emitter: Emitter, *, retry_attempts: int,
                 retry_delay_ms: int, backoff: Backoff | None = None) -> None:
        self.providers = list(providers)
        self.emitter = emitter
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_ms / 1000
        self.backoff = backoff
        self.counters = PipelineCounters()
        self.stopping = threading.Event()
        # Set by the runtime when the primary is remote (reliability.buffer_on_error): batches it cannot
        # take go to the spool, and the breaker stops the writer from waiting on it batch after batch.
        self.spool: Spool | None = None
        self.breaker: CircuitBreaker | None = None
        self.replay_batch = 5000
        self.disk_full: str | None = None
        # Set by the runtime (reliability.min_free_disk_mb): commits to the primary wait while disk is low.
        self.disk_guard: DiskGuard | None = None
        self.spool_guard: DiskGuard | None = None  # the same check for the spool's directory
        # Set by the runtime (reliability.memory_limit): True while the queue holds too much, so batches
        # go to the spool at once instead of waiting on a remote primary.
        self.spill_now: Callable[[], bool] = lambda: False
        self._spilling = False  # the batch in hand goes to the spool because memory asked, not the store

    def _retry_delay(self, attempt: int) -> float:
        if self.backoff is not None:
            return float(self.backoff.delay(attempt))
        return float(min(self.retry_delay_s * 2.0 ** min(attempt - 1, 6), 5.0))

    def note_error(self, message: str) -> None:
        """Remember the latest problem for health reports."""
        self.counters.last_error = message
        self.counters.last_error_at = int(time.time() * 1000)

    def _reject(self, event: TelemetryEvent, reason: str) -> None:
        key = reason.split(":", 1)[0]
        self.counters.rejected += 1
        self.counters.rejected_reasons[key] = self.counters.rejected_reasons.get(key, 0) + 1
        self.note_error(reason)
        logger.warning("telemetry event dropped (%s): %s", event.event_type, reason)
        if self.emitter.has("error"):
            from .processing import DropNotice

            self.emitter.emit("error", ValidationError(key, reason, message=reason),
                              DropNotice(reason, "store", event.event_id, event.session_id, event.event_type))

    def _store_with_retry(self, provider: StorageProvider,
                          events: list[TelemetryEvent]) -> tuple[bool, BatchResult | None]:
        """Return (written, result); written is False once the batch is given up on."""
        attempt = 0
        guard = self.disk_guard if self.providers and provider is self.providers[0] else None
        while True:
            try:
                if guard is not None:
                    guard.ensure()  # cheap (cached statvfs): hold the batch rather than run into SQLITE_FULL
                return True, self._store_bisecting(provider, events)
            except Exception as exc:
                attempt += 1
                self.counters.store_errors += 1
                self.note_error(f"{_name(provider)}: {exc}")
                if is_disk_full(exc):
                    if self.disk_full is None:
                        logger.error("telemetry store %s: disk full, holding %d events until space is freed: %s",
                                     _name(provider), len(events), exc)
                    self.disk_full = f"{_name(provider)}: {exc}"
                # A lock held by another process is waited out for as long as we run; other errors
                # get retry_attempts tries, then the batch is counted as lost and logged.
                transient = is_transient(exc) and not self.stopping.is_set()
                if not transient and attempt > self.retry_attempts:
                    self.counters.lost_after_retries += len(events)
                    logger.error("telemetry store %s failed %d times; %d events lost: %s",
                                 _name(provider), attempt, len(events), exc)
                    if self.emitter.has("error"):
                        self.emitter.emit("error", exc, None)
                    return False, None
                self.counters.retries += 1
                self.stopping.wait(self._retry_delay(attempt))

    def _wait_or_spill(self, seconds: float) -> bool:
        """Wait before a retry of the remote primary; return early (True) once memory asks for a spill."""
        deadline = time.monotonic() + seconds
        while not self.spill_now():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stopping.wait(min(remaining, 0.05)):
                return False
        return True

    def _store_bisecting(self, provider: StorageProvider, events: list[TelemetryEvent]) -> BatchResult | None:
        """Store a batch; when the store refuses a row, store the halves apart so only that row is lost.

        Safe because a batch is one transaction and events are idempotent by event_id: a retry of the
        whole batch after a half went in stores nothing twice.
        """
        try:
            return provider.store_batch(events)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            if len(events) == 1:
                return BatchResult(rejected=[(events[0], f"store: refused the event ({type(exc).__name__}: {exc})")])
            middle = len(events) // 2
            halves = [events[:middle], events[middle:]]
            return _merge([(half, self._store_bisecting(provider, half)) for half in halves])

    def process(self, events: list[TelemetryEvent]) -> CommitOutcome:
        """Commit one batch to the primary store (then to any secondary provider); announce what was stored."""
        started = time.perf_counter()
        if not events and (self.spool is None or not self.spool.depth()):
            return CommitOutcome(True, [], set())
        if not self.providers:
            # Every store failed to open: these events go nowhere, and health must say so.
            self.counters.no_store += len(events)
            return CommitOutcome(False, [], set())
        if self.spool is not None:
            return self._process_spooling(events, started)
        ok, primary = self._store_with_retry(self.providers[0], events)
        if not ok:
            return CommitOutcome(False, [], set())
        self.disk_full = None
        return self._committed(events, primary, started)

    def _committed(self, events: list[TelemetryEvent], primary: BatchResult | None,
                   started: float) -> CommitOutcome:
        """Count what the primary store took, feed secondary providers, announce it."""
        self.counters.last_commit_at = int(time.time() * 1000)
        self.counters.last_commit_ms = (time.perf_counter() - started) * 1000
        refused: set[str] = set()
        if primary is not None:
            self.counters.duplicates += primary.duplicates
            for event, reason in primary.rejected:
                refused.add(event.event_id or "")
                self._reject(event, reason)
        stored = [e for e in events if e.event_id not in refused] if refused else events
        self.counters.written += primary.stored if primary is not None else len(stored)
        # Secondary providers get what the primary stored; their failures are theirs alone.
        for provider in self.providers[1:]:
            self._store_with_retry(provider, stored)
        if stored and self.emitter.has("events:tracked"):  # once per commit: the listeners' hot path
            self.emitter.emit("events:tracked", stored)
        if self.emitter.has("event:tracked"):
            for event in stored:
                self.emitter.emit("event:tracked", event)
        if self.emitter.has("flush"):
            self.emitter.emit("flush", {"count": len(stored),
                                        "duration_ms": (time.perf_counter() - started) * 1000})
        return CommitOutcome(True, stored, refused)

    # -- a remote primary with a local spool -----------------------------------------------------------

    def _try_remote(self, events: list[TelemetryEvent]) -> BatchResult | None:
        """Store in the remote primary within the retry budget; raise the last transient error when it fails.

        Data errors are bisected as always. The breaker counts every failed attempt, so a store that is
        down opens it after `threshold` attempts and later batches go straight to the spool.
        """
        assert self.breaker is not None
        provider = self.providers[0]
        attempt = 0
        while True:
            if not self.breaker.allow():
                raise TransientStoreError(f"{_name(provider)}: circuit breaker open")
            try:
                result = self._store_bisecting(provider, events)
            except Exception as exc:
                if not is_transient(exc):
                    self.breaker.record_success()  # it answered: the store is up, the batch is the problem
                    raise
                attempt += 1
                self.breaker.record_failure()
                self.counters.store_errors += 1
                self.note_error(f"{_name(provider)}: {exc}")
                if self.emitter.has("connection:error"):
                    self.emitter.emit("connection:error", exc)
                if attempt > self.retry_attempts or self.stopping.is_set():
                    raise
                if self.spill_now():
                    self._spilling = True
                    raise
                self.counters.retries += 1
                if self._wait_or_spill(self._retry_delay(attempt)):
                    self._spilling = True
                    raise  # the queue is past memory_limit: spool this batch now rather than wait
                continue
            self.breaker.record_success()
            return result

    def replay(self) -> list[TelemetryEvent]:
        """Move spooled events to the primary, oldest first, while it takes them; return those stored."""
        spool = self.spool
        stored: list[TelemetryEvent] = []
        while spool is not None and spool.depth() and not self.stopping.is_set():
            seq, events = spool.peek(self.replay_batch)
            if not events:
                break
            started = time.perf_counter()
            try:
                result = self._try_remote(events)
            except Exception as exc:
                if is_transient(exc):
                    break  # still down: the spool keeps them, in order
                # Neither the store nor the connection: the batch is refused (bisection handles rows).
                self.counters.lost_after_retries += len(events)
                logger.error("telemetry spooled batch of %d events refused: %s", len(events), exc)
                spool.remove_through(seq)
                continue
            outcome = self._committed(events, result, started)
            spool.remove_through(seq)
            stored.extend(outcome.stored)
        return stored

    def _spool_append(self, events: list[TelemetryEvent]) -> int:
        """Spool a batch; a full disk under the spool (or below min_free_disk_mb) is waited out, not lost."""
        assert self.spool is not None
        attempt = 0
        while True:
            try:
                if self.spool_guard is not None:
                    self.spool_guard.ensure()
                lost = self.spool.append(events)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self.stopping.is_set():
                    logger.error("telemetry spool %s: %s at shutdown; %d events lost", self.spool.path, exc,
                                 len(events))
                    return len(events)  # the spool had no room for them: counted as spool_full
                attempt += 1
                if self.disk_full is None:
                    logger.error("telemetry spool %s: %s; holding %d events", self.spool.path, exc, len(events))
                self.disk_full = f"spool {self.spool.path}: {exc}" if is_disk_full(exc) else self.disk_full
                self.note_error(f"spool: {exc}")
                self.stopping.wait(self._retry_delay(attempt))
                continue
            self.disk_full = None
            return lost

    def _process_spooling(self, events: list[TelemetryEvent], started: float) -> CommitOutcome:
        """The primary is remote: replay the spool first, so order holds; spool what it cannot take now."""
        assert self.spool is not None
        if self.spill_now() and events:
            # The queue holds more than memory_limit: move this batch to disk now; the spool replays it,
            # in order, once the queue is back under the limit.
            lost = self._spool_append(events)
            self.counters.spilled += len(events) - lost
            self.counters.spool_full += lost
            return CommitOutcome(lost == 0, [], set())
        replayed = self.replay()
        if not events:
            return CommitOutcome(True, replayed, set())
        if not self.spool.depth():
            try:
                result = self._try_remote(events)
            except Exception as exc:
                if not is_transient(exc):
                    self.counters.lost_after_retries += len(events)
                    logger.error("telemetry store %s refused a batch of %d events: %s",
                                 _name(self.providers[0]), len(events), exc)
                    return CommitOutcome(False, replayed, set())
            else:
                outcome = self._committed(events, result, started)
                outcome.stored = [*replayed, *outcome.stored]
                return outcome
        lost = self._spool_append(events)
        if self._spilling:  # the retries were cut short because the queue passed memory_limit
            self._spilling = False
            self.counters.spilled += len(events) - lost
        if lost:
            self.counters.spool_full += lost
            logger.error("telemetry spool full (%d events): %d events dropped", self.spool.max_events, lost)
        # Spooled is durable on this host: the batch counts as taken; it reaches the primary on replay.
        return CommitOutcome(lost == 0, replayed, set())
