"""A tiny synchronous event emitter: `on`, `off`, `emit`; handler errors are logged, never raised."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final

logger = logging.getLogger("vibekit_telemetry")

Handler = Callable[..., Any]
KNOWN_EVENTS: Final = frozenset({"event:tracked", "events:tracked", "flush", "error", "shutdown", "dropped",
                                 "stream:broadcast"})


class Emitter:
    """Named events with any number of handlers each."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()

    def on(self, event: str, handler: Handler) -> None:
        """Call `handler` whenever `event` is emitted."""
        if not callable(handler):
            raise TypeError(f"handler: expected a callable, got {handler!r}")
        with self._lock:
            self._handlers = {**self._handlers, event: [*self._handlers.get(event, []), handler]}

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove one handler of `event`, or all of them when handler is None."""
        with self._lock:
            handlers = [h for h in self._handlers.get(event, []) if handler is not None and h != handler]
            self._handlers = {**self._handlers, event: handlers}

    def has(self, event: str) -> bool:
        """Return whether anyone listens to `event` (lets hot paths skip building payloads)."""
        return bool(self._handlers.get(event))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of `event`; a failing handler is logged and the rest still run."""
        # Handlers are read from an immutable snapshot, so on/off from a handler is safe.
        for handler in self._handlers.get(event, ()):
            try:
                handler(*args)
            except Exception:
                logger.exception("telemetry %r handler %r failed", event, handler)
