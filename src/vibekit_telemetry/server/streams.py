"""Live streams: a hub fed by `event:tracked` on the writer thread, fanning out to bounded per-client buffers.

The writer thread only appends to a deque and, at most once per burst, schedules the hub on the event
loop (`call_soon_threadsafe`); the loop encodes each event once and offers it to every matching
subscriber. A subscriber's buffer is bounded: when a client reads too slowly its oldest messages are
dropped and counted, so a slow consumer never slows ingest. Replies to the client's own commands
(subscribed, query results, pong) go to a separate queue and are never dropped; the client's commands
are not read while REPLY_BACKLOG replies wait, so that queue stays bounded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..events import TelemetryEvent, now_ms

if TYPE_CHECKING:
    from ..service import Telemetry

logger = logging.getLogger("vibekit_telemetry.server")

ALL: Final = "all"
REPLY_BACKLOG: Final = 1000
_ids = itertools.count(1)


def parse_channel(channel: str) -> tuple[str, str | None]:
    """Split `all`, `session:<id>` or `category:<name>` into (kind, value); raise ValueError otherwise."""
    if channel == ALL:
        return ALL, None
    kind, sep, value = channel.partition(":")
    if sep and value and kind in ("session", "category"):
        return kind, value
    raise ValueError(f"unknown channel {channel!r}: expected all, session:<id> or category:<name>")


@dataclass(eq=False)
class Subscriber:
    """One live connection: its rooms, its bounded buffer and what it lost."""

    kind: str
    buffer_size: int
    id: int = field(default_factory=lambda: next(_ids))
    all: bool = False
    sessions: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    dropped: int = 0
    sent: int = 0
    closed: bool = False
    _reported_dropped: int = 0
    _buffer: deque[str] = field(init=False)
    _replies: deque[str] = field(init=False, default_factory=deque)
    _ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _drained: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._buffer = deque(maxlen=self.buffer_size)

    def subscribe(self, channel: str) -> None:
        """Join a room: all, session:<id> or category:<name>."""
        kind, value = parse_channel(channel)
        if kind == ALL:
            self.all = True
        elif kind == "session":
            self.sessions.add(str(value))
        else:
            self.categories.add(str(value))

    def unsubscribe(self, channel: str) -> None:
        """Leave a room (leaving one not joined is fine)."""
        kind, value = parse_channel(channel)
        if kind == ALL:
            self.all = False
        elif kind == "session":
            self.sessions.discard(str(value))
        else:
            self.categories.discard(str(value))

    def channels(self) -> list[str]:
        """Return the rooms this connection is in."""
        return ([ALL] if self.all else []) + [f"session:{s}" for s in sorted(self.sessions)] + \
            [f"category:{c}" for c in sorted(self.categories)]

    def match(self, event: TelemetryEvent) -> str | None:
        """Return the room an event reaches this connection through, or None."""
        if event.session_id is not None and event.session_id in self.sessions:
            return f"session:{event.session_id}"
        if event.category is not None and event.category in self.categories:
            return f"category:{event.category}"
        return ALL if self.all else None

    def offer(self, message: str) -> None:
        """Buffer one message; when full, the oldest goes and is counted (never blocks)."""
        if len(self._buffer) == self.buffer_size:
            self.dropped += 1
        self._buffer.append(message)
        self._ready.set()

    def reply(self, message: str) -> None:
        """Queue an answer to the client's own command: sent before buffered events, never dropped."""
        self._replies.append(message)
        if len(self._replies) >= REPLY_BACKLOG:
            self._drained.clear()
        self._ready.set()

    async def replies_drained(self) -> None:
        """Wait while REPLY_BACKLOG replies are unsent (the client sends commands faster than it reads)."""
        while len(self._replies) >= REPLY_BACKLOG and not self.closed:
            await self._drained.wait()

    def close(self) -> None:
        """End the connection's stream at its next read."""
        self.closed = True
        self._ready.set()
        self._drained.set()

    async def next_batch(self, timeout: float) -> list[str] | None:
        """Wait up to `timeout` for messages; [] on timeout (time for a heartbeat), None once closed."""
        if not self._buffer and not self._replies and not self.closed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        self._ready.clear()
        if self.closed:
            return None
        messages = [*self._replies, *self._buffer]
        self._replies.clear()
        self._drained.set()
        self._buffer.clear()
        if self.dropped != self._reported_dropped:
            lost = self.dropped - self._reported_dropped
            self._reported_dropped = self.dropped
            messages.insert(0, json.dumps({"type": "dropped", "count": lost, "total": self.dropped}))
        self.sent += len(messages)
        return messages

    def heartbeat(self) -> str:
        """Return a heartbeat message (with the dropped count so far)."""
        return json.dumps({"type": "heartbeat", "ts": now_ms(), "dropped": self.dropped})


class StreamHub:
    """Fan tracked events out to live subscribers; attach() to a Telemetry inside the server's loop."""

    def __init__(self, *, buffer_size: int = 1000, max_clients: int = 1000,
                 heartbeat_s: float = 15.0) -> None:
        self.buffer_size = buffer_size
        self.max_clients = max_clients
        self.heartbeat_s = heartbeat_s
        self._subscribers: tuple[Subscriber, ...] = ()
        self._pending: deque[TelemetryEvent] = deque()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._telemetry: Telemetry | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.dropped_closed = 0

    # -- lifecycle (the server's lifespan) --------------------------------------------------------

    def attach(self, telemetry: Telemetry, loop: asyncio.AbstractEventLoop) -> None:
        """Listen to `event:tracked` of `telemetry`, delivering on `loop`."""
        self._loop = loop
        self._telemetry = telemetry
        telemetry.on("event:tracked", self._on_tracked)

    def detach(self) -> None:
        """Stop listening and end every open stream."""
        if self._telemetry is not None:
            self._telemetry.off("event:tracked", self._on_tracked)
            self._telemetry = None
        self.close_all()

    def close_all(self) -> None:
        """End every open stream (call on the loop; see close_all_threadsafe)."""
        for subscriber in self._subscribers:
            subscriber.close()

    def close_all_threadsafe(self) -> None:
        """End every open stream from any thread (graceful shutdown)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.close_all)

    # -- subscribers (on the loop) ----------------------------------------------------------------

    def add(self, kind: str, channels: Iterable[str] = ()) -> Subscriber:
        """Register a connection in the given rooms; raise OverflowError when at max_clients."""
        if len(self._subscribers) >= self.max_clients:
            raise OverflowError(f"at most {self.max_clients} live-stream connections")
        subscriber = Subscriber(kind, self.buffer_size)
        for channel in channels:
            subscriber.subscribe(channel)
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> None:
        """Forget a connection."""
        subscriber.close()
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)
        self.dropped_closed += subscriber.dropped

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        """The open connections."""
        return self._subscribers

    def dropped_total(self) -> int:
        """Messages dropped for slow consumers, open and closed connections alike."""
        return self.dropped_closed + sum(s.dropped for s in self._subscribers)

    def stats(self) -> dict[str, Any]:
        """Return connection and delivery counts."""
        subs = self._subscribers
        return {"subscribers": len(subs), "websocket": sum(s.kind == "ws" for s in subs),
                "sse": sum(s.kind == "sse" for s in subs), "delivered": self.delivered,
                "dropped": self.dropped_total(), "buffer_size": self.buffer_size}

    # -- delivery ---------------------------------------------------------------------------------

    def _on_tracked(self, event: TelemetryEvent) -> None:
        """On the writer thread: queue the event and wake the loop once per burst; nothing else."""
        if not self._subscribers:
            return
        self._pending.append(event)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None:
                return
            try:
                loop.call_soon_threadsafe(self._dispatch)
            except RuntimeError:  # the loop has closed: the server is stopping
                self._pending.clear()

    def publish(self, event: TelemetryEvent) -> None:
        """Deliver one event to matching subscribers now (on the loop)."""
        self._pending.append(event)
        self._dispatch()

    def _dispatch(self) -> None:
        # Cleared before draining: an event appended after this point schedules another run.
        self._scheduled = False
        pending = self._pending
        subscribers = self._subscribers
        delivered = 0
        while pending:
            event = pending.popleft()
            encoded: str | None = None
            for subscriber in subscribers:
                channel = subscriber.match(event)
                if channel is None:
                    continue
                if encoded is None:
                    encoded = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False,
                                         default=str)
                subscriber.offer(f'{{"type":"event","channel":{json.dumps(channel)},"event":{encoded}}}')
                delivered += 1
        self.delivered += delivered
