"""The delivery loop every exporter worker runs: take a batch, export it, retry it until it goes out.

One daemon thread per exporter, so a slow or dead destination only ever holds up its own thread:
the writer commits to the store and never waits on it, and other exporters keep going.
Subclasses say where batches come from (the store's change log, or a bounded queue).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent
from .backoff import Backoff
from .base import Exporter, PoisonBatchError
from .breaker import CLOSED, OPEN, CircuitBreaker

logger = logging.getLogger("vibekit_telemetry.exporters")

Batch = list[tuple[int | None, TelemetryEvent]]  # (change-log position or None, event), oldest first


def describe(exc: BaseException) -> str:
    """Return a one-line description of an error, short enough for health and /metrics."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line[:300]


class DeliveryWorker:
    """The thread, retries, breaker, counters and bounded shutdown shared by StoreFollower and BusFeed.

    A failed batch is kept and retried (exponential backoff with full jitter) until the destination
    takes it; there is no attempt limit, so nothing is skipped because a destination was down for
    long. Only a batch the destination refuses for good (PoisonBatchError) is skipped, and counted.
    """

    mode = "worker"

    def __init__(self, exporter: Exporter, *, batch_size: int | None = None, backoff: Backoff | None = None,
                 breaker: CircuitBreaker | None = None, poll_interval_s: float = 1.0) -> None:
        name = getattr(exporter, "name", None)
        if not isinstance(name, str) or not name:
            raise ValidationError("exporter.name", "a non-empty string naming the exporter", name)
        size = exporter.batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValidationError("batch_size", "an integer >= 1", size)
        if not poll_interval_s > 0:
            raise ValidationError("poll_interval_s", "a number of seconds > 0", poll_interval_s)
        self.exporter, self.name, self.batch_size = exporter, name, size
        self.backoff = backoff or Backoff()
        self.breaker = breaker or CircuitBreaker()
        self.poll_interval_s = poll_interval_s
        # Retries of one batch before the worker pauses for the breaker's timeout (None: only the
        # breaker's failure threshold pauses). The batch is kept either way: never skipped for being late.
        self.retry_attempts: int | None = None
        self.delivered = 0  # events the destination accepted
        self.failures = 0  # failed export() calls (each retried)
        self.poisoned = 0  # events in batches the destination refused for good, skipped
        self.last_error: str | None = None
        self._wake = threading.Event()  # notify(): something was committed
        self._stop = threading.Event()  # shutdown() began: drain until caught up or the deadline
        self._halt = threading.Event()  # the deadline passed: sleep no more
        self._deadline = float("inf")
        self._caught_up = False
        self._thread: threading.Thread | None = None
        self._last_state = CLOSED

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name=f"vibekit-exporter-{self.name}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake the worker: new events were committed (cheap; called by the writer after each commit)."""
        self._wake.set()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Deliver what is pending for at most `timeout` seconds, then stop; return whether it caught up.

        What is left is not lost when the worker follows the store: its cursor is persisted and the
        next start sends the rest. An export() still running at the deadline is left to finish on
        its daemon thread.
        """
        self.begin_shutdown(timeout)
        return self.wait_shutdown(self._deadline)

    def begin_shutdown(self, timeout: float = 5.0) -> None:
        """Tell the thread to drain for at most `timeout` seconds and stop (returns at once)."""
        self._deadline = time.monotonic() + max(0.0, timeout)
        self._stop.set()
        self._wake.set()

    def wait_shutdown(self, deadline: float) -> bool:
        """Wait until the thread stopped or time.monotonic() reaches `deadline`; return whether it caught up."""
        thread = self._thread
        if thread is None:
            self._close_exporter()
            return self._pending() == 0
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            self._halt.set()  # it is inside export(): once that returns, it stops without sleeping
            return False
        return self._caught_up

    def _close_exporter(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception as exc:  # a destination's shutdown must not break the host's
            logger.warning("exporter %s: shutdown failed: %s", self.name, describe(exc))

    # -- the loop --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._close_exporter()

    def _loop(self) -> None:
        batch: Batch | None = None
        attempt = 0
        while not self._halt.is_set():
            if self._stop.is_set() and time.monotonic() >= self._deadline:
                return
            try:
                if batch is None:
                    # Both before reading: a commit after the read wakes the next wait, and "caught up"
                    # holds only for a read that began after shutdown did (a commit, then begin_shutdown,
                    # both landing during an empty read, would otherwise end the drain without them).
                    stopping = self._stop.is_set()
                    self._wake.clear()
                    batch = self._next_batch() or None
                    if batch is None:
                        if stopping:
                            self._caught_up = True
                            return
                        self._wake.wait(self.poll_interval_s)
                        continue
                if not self.breaker.allow():
                    self._note_state()
                    self._sleep(self.breaker.retry_after())
                    continue
                if self._export(batch):
                    attempt = 0
                    done, batch = batch, None
                    self._delivered(done)
                else:
                    attempt += 1
                    if self.retry_attempts is not None and attempt > self.retry_attempts:
                        attempt = 0
                        self.breaker.trip()  # retries used up: pause for the breaker's timeout, then probe
                        self._note_state()
                        continue
                    self._sleep(self.backoff.delay(attempt))
            except Exception as exc:  # the store could not be read or the cursor saved: wait, try again
                self.last_error = describe(exc)
                logger.warning("exporter %s: %s", self.name, self.last_error)
                attempt += 1
                self._sleep(self.backoff.delay(attempt))

    def _export(self, batch: Batch) -> bool:
        """Send one batch; return whether it is done with (delivered, or refused for good)."""
        try:
            self.exporter.export([event for _, event in batch])
        except PoisonBatchError as exc:
            # The destination answered, so it is up; the batch itself can never go in.
            self.breaker.record_success()
            self.poisoned += len(batch)
            self.last_error = describe(exc)
            logger.error("exporter %s: destination refused a batch of %d events, skipped: %s", self.name,
                         len(batch), self.last_error)
            self._note_state()
            return True
        except Exception as exc:
            self.breaker.record_failure()
            self.failures += 1
            self.last_error = describe(exc)
            self._note_state()
            return False
        self.breaker.record_success()
        self.delivered += len(batch)
        self._note_state()
        return True

    def _note_state(self) -> None:
        """Log breaker transitions once each, not every failure of a destination that stays down."""
        state = self.breaker.state
        if state != self._last_state:
            if state == OPEN:
                logger.warning("exporter %s: destination failing, pausing deliveries: %s", self.name,
                               self.last_error)
            elif state == CLOSED:
                logger.info("exporter %s: destination back, delivering", self.name)
            self._last_state = state

    def _sleep(self, seconds: float) -> None:
        """Wait before a retry; shutdown ends the wait (then the drain deadline bounds every wait)."""
        if self._stop.is_set():
            self._halt.wait(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._stop.wait(seconds)

    # -- what subclasses provide -----------------------------------------------------------------

    def _next_batch(self) -> Batch:
        """Return the next batch to send (empty when there is nothing)."""
        raise NotImplementedError

    def _delivered(self, batch: Batch) -> None:
        """Record that `batch` is done with (advance and persist the cursor, ...)."""

    def _pending(self) -> int:
        """Return how many events wait to be delivered, as far as this worker knows."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """Return the worker's counters: for health and /metrics."""
        return {"name": self.name, "mode": self.mode, "running": bool(self._thread and self._thread.is_alive()),
                "breaker": self.breaker.state, "breaker_opened": self.breaker.times_opened,
                "delivered": self.delivered, "failures": self.failures, "poisoned": self.poisoned,
                "last_error": self.last_error}
