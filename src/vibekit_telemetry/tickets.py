"""Tickets: processed events queued as one item, resolved by the writer once the store committed them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .events import TelemetryEvent

logger = logging.getLogger("vibekit_telemetry")

__all__ = ["Ticket"]


class Ticket:
    """Processed events queued as one item; `done` is set once they are committed (or given up on)."""

    __slots__ = ("committed", "done", "error", "events", "on_done")

    def __init__(self, events: list[TelemetryEvent], on_done: Callable[[Ticket], None] | None = None) -> None:
        self.events = events
        self.done = threading.Event()
        self.committed = False
        self.error: str | None = None
        self.on_done = on_done

    def resolve(self, error: str | None) -> None:
        """Called by the writer once the commit is over: committed when error is None."""
        self.committed = error is None
        self.error = error
        self.done.set()
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception:
                logger.exception("telemetry commit callback failed")

    def wait(self, timeout: float | None) -> bool:
        """Wait for the commit; True when every event of the ticket is in the primary store."""
        return self.done.wait(timeout) and self.committed
