"""Batcher: collect events and send them in batches, waiting for the durable commit, with retries (seed 001)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent

logger = logging.getLogger("vibekit_telemetry")


def _positive(name: str, value: Any, *, zero: bool = False) -> Any:
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ValidationError(name, f"a number >= {low}", value)
    return value


class Batcher:
    """add() events; every `batch_size` events or `flush_interval` ms they go through the chain as one batch
    and the batcher waits for the commit, retrying a batch the store did not take up to `max_retries` times.
    """

    def __init__(self, runtime: Any, *, batch_size: int = 100, flush_interval: float = 1000,
                 max_retries: int = 3, commit_timeout_s: float = 30.0) -> None:
        self.runtime = runtime
        self.batch_size = int(_positive("batch_size", batch_size))
        self.flush_interval_s = float(_positive("flush_interval", flush_interval)) / 1000
        self.max_retries = int(_positive("max_retries", max_retries, zero=True))
        self.commit_timeout_s = commit_timeout_s
        self.sent = 0
        self.failed = 0
        self.retries = 0
        self.invalid = 0
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="telemetry-batcher", daemon=True)
        self._thread.start()

    def add(self, event: TelemetryEvent | Mapping[str, Any]) -> None:
        """Queue one event; a full batch is sent on this thread (so add() waits for that commit)."""
        if not isinstance(event, (TelemetryEvent, Mapping)):
            raise ValidationError("event", "a dict or TelemetryEvent", event)
        with self._lock:
            # Checked under the lock close() takes to stop: an add either lands before close()'s
            # final flush (and is sent by it) or is refused, never left behind unsent.
            if self._stop.is_set():
                raise ValidationError("batcher", "an open batcher (this one is closed)")
            self._pending.append(event)
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    async def add_async(self, event: TelemetryEvent | Mapping[str, Any]) -> None:
        """add() for async code (`await batcher.add_async(event)`): a full batch is sent off the event loop."""
        await asyncio.to_thread(self.add, event)

    def flush(self) -> bool:
        """Send what is pending now; True when every batch sent so far was committed."""
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                self._send(batch)
        return self.failed == 0

    def _send(self, batch: list[Any]) -> None:
        try:
            events = self.runtime.process_now(batch)
        except ValidationError as exc:  # bad input is not retried: it would fail the same way
            self.invalid += len(batch)
            self.failed += len(batch)
            logger.warning("telemetry batcher: batch refused: %s", exc)
            return
        for attempt in range(self.max_retries + 1):
            if not events:
                return
            ticket = self.runtime.submit_processed(events, urgent=True)
            if ticket is not None and ticket.wait(self.commit_timeout_s):
                self.sent += len(events)
                return
            if attempt < self.max_retries:
                self.retries += 1
                self._stop.wait(min(2.0, 0.05 * 2 ** attempt))
        self.failed += len(events)

    def _tick(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:  # never let the timer thread die: the next tick tries again
                logger.exception("telemetry batcher flush failed")

    def close(self) -> bool:
        """Send what is pending and stop the timer; True when everything was committed."""
        with self._lock:
            self._stop.set()
        self._thread.join(self.flush_interval_s + 1)
        return self.flush()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
