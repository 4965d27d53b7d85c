"""EventStream: live committed events for code, as an iterator or an async iterator (seed 001 createEventStream).

Fed by `event:tracked` on the writer thread, after the commit: the writer only appends to a bounded
deque; when the reader is too slow the oldest events are dropped and counted, so a stream never
slows tracking.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent
from .broadcast import BROADCAST_EVENT, Broadcast, check_channel

_KEYS = {"session_id": "session_ids", "session_ids": "session_ids", "category": "categories",
         "categories": "categories", "agent_type": "categories", "event_type": "event_types",
         "event_types": "event_types"}


def _values(name: str, value: Any) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not all(isinstance(v, str) and v for v in items):
        raise ValidationError(f"filter.{name}", "a string or a list of strings", value)
    return frozenset(items)


class EventFilter:
    """Which live events a stream takes: any of these sessions, categories and event types (empty: all)."""

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        chosen: dict[str, frozenset[str]] = {}
        if spec is not None and not isinstance(spec, Mapping):
            raise ValidationError("filter", "a mapping such as {'session_id': ..., 'category': ...}", spec)
        for key, value in (spec or {}).items():
            target = _KEYS.get(key)
            if target is None:
                raise ValidationError(f"filter.{key}", "one of " + ", ".join(sorted(_KEYS)), key)
            chosen[target] = chosen.get(target, frozenset()) | _values(key, value)
        self.session_ids = chosen.get("session_ids", frozenset())
        self.categories = chosen.get("categories", frozenset())
        self.event_types = chosen.get("event_types", frozenset())

    def matches(self, event: TelemetryEvent) -> bool:
        """Whether the event passes every given criterion."""
        return ((not self.session_ids or event.session_id in self.session_ids)
                and (not self.categories or event.category in self.categories)
                and (not self.event_types or event.event_type in self.event_types))


class EventStream:
    """Live committed events matching a filter; iterate it (blocking) or `async for` it; close() ends it."""

    def __init__(self, emitter: Any, filter: Mapping[str, Any] | None = None, *, buffer_size: int = 10_000,
                 channels: Iterable[str] | None = None) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
            raise ValidationError("buffer_size", "an integer >= 1", buffer_size)
        self.filter = EventFilter(filter)
        self.buffer_size = buffer_size
        self.dropped = 0
        self.closed = False
        # Broadcast channels this stream also takes (gRPC Listen); None: events only (get() returns events).
        self.channels = None if channels is None else frozenset(check_channel(c) for c in channels)
        self._buffer: deque[Any] = deque()
        self._ready = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._emitter = emitter
        emitter.on("event:tracked", self._offer)
        if self.channels is not None:
            emitter.on(BROADCAST_EVENT, self._offer_broadcast)

    def _offer(self, event: TelemetryEvent) -> None:
        """On the writer thread: keep the event if it matches (dropping the oldest when full)."""
        if self.closed or not self.filter.matches(event):
            return
        self._keep(event)

    def _offer_broadcast(self, item: Broadcast) -> None:
        """On the broadcaster's thread: keep a broadcast on one of this stream's channels."""
        if not self.closed and self.channels is not None and item.channel in self.channels:
            self._keep(item)

    def _keep(self, item: TelemetryEvent | Broadcast) -> None:
        with self._ready:
            if len(self._buffer) >= self.buffer_size:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(item)
            self._ready.notify_all()
            waiters = list(self._waiters)
        for loop, ready in waiters:
            loop.call_soon_threadsafe(ready.set)

    def get(self, timeout: float | None = None) -> TelemetryEvent | None:
        """The next event, waiting up to timeout seconds (None: forever); None on timeout or when closed."""
        return self.get_message(timeout)  # type: ignore[return-value]  # events only without channels

    def get_message(self, timeout: float | None = None) -> TelemetryEvent | Broadcast | None:
        """The next event or broadcast (with channels), waiting up to timeout seconds; None on timeout or closed."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._buffer or self.closed, timeout):
                return None
            return self._buffer.popleft() if self._buffer else None

    def __iter__(self) -> Iterator[TelemetryEvent]:
        return self

    def __next__(self) -> TelemetryEvent:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def __aiter__(self) -> AsyncIterator[TelemetryEvent]:
        return self

    async def __anext__(self) -> TelemetryEvent:
        ready = asyncio.Event()
        entry = (asyncio.get_running_loop(), ready)
        with self._ready:
            self._waiters.append(entry)
        try:
            while True:
                with self._ready:
                    if self._buffer:
                        return self._buffer.popleft()  # type: ignore[no-any-return]  # events only without channels
                    if self.closed:
                        raise StopAsyncIteration
                    ready.clear()
                await ready.wait()
        finally:
            with self._ready:
                self._waiters.remove(entry)

    def close(self) -> None:
        """Stop receiving; iterators end once the buffered events are read."""
        self._emitter.off("event:tracked", self._offer)
        self._emitter.off(BROADCAST_EVENT, self._offer_broadcast)
        with self._ready:
            self.closed = True
            self._ready.notify_all()
            waiters = list(self._waiters)
        for loop, ready in waiters:
            loop.call_soon_threadsafe(ready.set)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
