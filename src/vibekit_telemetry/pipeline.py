"""The writer-thread half of the pipeline: finish events, fan batches out to stores, retry, count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .emitter import Emitter
from .errors import ValidationError
from .events import TelemetryEvent, encode_json
from .ids import uuid7
from .store.base import BatchResult, StorageProvider

logger = logging.getLogger("vibekit_telemetry")


@dataclass(slots=True)
class PipelineCounters:
    """What happened to events after they left the caller's thread."""

    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    store_errors: int = 0
    retries: int = 0
    lost_after_retries: int = 0
    no_store: int = 0
    last_error: str | None = None
    last_error_at: int | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def is_transient(exc: BaseException) -> bool:
    """Return whether a store error is worth waiting out (a lock held by another process)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def is_data_error(exc: BaseException) -> bool:
    """Return whether a store refused the rows themselves, so the other rows of the batch can still go in."""
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


class WritePipeline:
    """Process one batch on the writer thread: ids, JSON, fan-out with retries, events for listeners."""

    def __init__(self, providers: Sequence[StorageProvider], emitter: Emitter, *, service_name: str,
                 service_version: str, context: dict[str, Any], retry_attempts: int,
                 retry_delay_ms: int) -> None:
        self.providers = list(providers)
        self.emitter = emitter
        self.service_name = service_name
        self.service_version = service_version
        self.context = context
        self.retry_attempts = retry_attempts
        self.retry_delay_s = retry_delay_ms / 1000
        self.counters = PipelineCounters()
        self.stopping = threading.Event()

    def _note_error(self, message: str) -> None:
        self.counters.last_error = message
        self.counters.last_error_at = int(time.time() * 1000)

    def prepare(self, events: list[TelemetryEvent]) -> list[TelemetryEvent]:
        """Fill ids, service, context and JSON text; drop (and count) events whose JSON cannot be encoded."""
        ready: list[TelemetryEvent] = []
        service_name, service_version, context = self.service_name, self.service_version, self.context
        for event in events:
            if event.event_id is None:
                event.event_id = uuid7(event.timestamp)
            if event.service_name is None:
                event.service_name = service_name
                event.service_version = service_version
            if context:
                event.context = {**context, **event.context} if event.context else dict(context)
            try:
                event.metadata_json = encode_json("metadata", event.metadata)
                event.context_json = encode_json("context", event.context)
            except Exception as exc:  # cycles, overflows: anything that cannot be stored is invalid
                self.counters.invalid += 1
                self.reject(event, str(exc) if isinstance(exc, ValidationError)
                            else f"metadata: {type(exc).__name__}: {exc}")
                continue
            ready.append(event)
        return ready

    def reject(self, event: TelemetryEvent, reason: str) -> None:
        """Count, log and announce an event that will not be stored."""
        key = reason.split(":", 1)[0]
        self.counters.rejected_reasons[key] = self.counters.rejected_reasons.get(key, 0) + 1
        self._note_error(reason)
        logger.warning("telemetry event dropped (%s): %s", event.event_type, reason)
        if self.emitter.has("error"):
            self.emitter.emit("error", ValidationError(key, reason, message=reason), event)

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
                self._note_error(f"{getattr(provider, 'name', type(provider).__name__)}: {exc}")
                # A lock held by another process is waited out for as long as we run; other errors
                # get retry_attempts tries, then the batch is counted as lost and logged.
                transient = is_transient(exc) and not self.stopping.is_set()
                if not transient and attempt > self.retry_attempts:
                    self.counters.lost_after_retries += len(events)
                    logger.error("telemetry store %s failed %d times; %d events lost: %s",
                                 getattr(provider, "name", provider), attempt, len(events), exc)
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

    def process(self, items: list[TelemetryEvent]) -> None:
        """Write one batch to every provider; the first provider's verdict decides what is announced."""
        started = time.perf_counter()
        events = self.prepare(items)
        if not events:
            return
        if not self.providers:
            # Every store failed to open: these events go nowhere, and health must say so.
            self.counters.no_store += len(events)
            return
        primary: BatchResult | None = None
        primary_ok = True
        for index, provider in enumerate(self.providers):
            ok, result = self._store_with_retry(provider, events)
            if index == 0:
                primary, primary_ok = result, ok
        if not primary_ok:
            return
        rejected_ids: set[str | None] = set()
        if primary is not None:
            self.counters.duplicates += primary.duplicates
            for event, reason in primary.rejected:
                self.counters.rejected += 1
                rejected_ids.add(event.event_id)
                self.reject(event, reason)
        stored = [e for e in events if e.event_id not in rejected_ids] if rejected_ids else events
        self.counters.written += primary.stored if primary is not None else len(stored)
        if self.emitter.has("event:tracked"):
            for event in stored:
                self.emitter.emit("event:tracked", event)
        if self.emitter.has("flush"):
            self.emitter.emit("flush", {"count": len(stored),
                                        "duration_ms": (time.perf_counter() - started) * 1000})
