"""The commit stage on the writer thread: store processed events in the primary store, wait out locks, count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .emitter import Emitter
from .errors import RefusedRowError, TransientStoreError, ValidationError
from .events import TelemetryEvent
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
    # Stores that do not raise the typed error yet: their lock errors still say so.
    text = str(exc).lower()
    return "locked" in text or "busy" in text


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
                 retry_delay_ms: int) -> None:
        self.providers = list(providers)
        self.emitter = emitter
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_ms / 1000
        self.counters = PipelineCounters()
        self.stopping = threading.Event()

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
        while True:
            try:
                return True, self._store_bisecting(provider, events)
            except Exception as exc:
                attempt += 1
                self.counters.store_errors += 1
                self.note_error(f"{_name(provider)}: {exc}")
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
                self.stopping.wait(min(self.retry_delay_s * (2 ** min(attempt - 1, 6)), 5.0))

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
        if not events:
            return CommitOutcome(True, [], set())
        if not self.providers:
            # Every store failed to open: these events go nowhere, and health must say so.
            self.counters.no_store += len(events)
            return CommitOutcome(False, [], set())
        ok, primary = self._store_with_retry(self.providers[0], events)
        if not ok:
            return CommitOutcome(False, [], set())
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
        if self.emitter.has("event:tracked"):
            for event in stored:
                self.emitter.emit("event:tracked", event)
        if self.emitter.has("flush"):
            self.emitter.emit("flush", {"count": len(stored),
                                        "duration_ms": (time.perf_counter() - started) * 1000})
        return CommitOutcome(True, stored, refused)
