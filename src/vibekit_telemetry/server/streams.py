"""Live streams: a hub fed by `event:tracked` on the writer thread, fanning out to bounded per-client buffers.

Its one way in is publish(): committed events and the Telemetry's broadcasts (`telemetry.broadcast`,
a streaming provider's broadcast) both arrive there, so anything relayed from elsewhere can too.

The writer thread only appends to a deque and wakes the hub's fan-out thread. That thread, not the
server's event loop, does the work that grows with subscribers: it groups connections by the rooms
they are in, encodes each event once per room, and, for connections that take batched frames
(`/ws?batch=true`, the dashboard), joins a round of messages once per group, so fifty dashboards cost
one join, not fifty. The loop is then woken once per round to send. A subscriber's buffer is bounded:
when a client reads too slowly its oldest messages are dropped and counted, so a slow consumer never
slows ingest. Replies to the client's own commands (subscribed, query results, pong) go to a separate
queue and are never dropped; the client's commands are not read while REPLY_BACKLOG replies wait, so
that queue stays bounded too.
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
from ..streaming.broadcast import ALL, BROADCAST_EVENT, Broadcast, parse_channel

if TYPE_CHECKING:
    from ..service import Telemetry

logger = logging.getLogger("vibekit_telemetry.server")
# The largest batch frame, in characters (see Subscriber.next_frames).
FRAME_CHARS: Final = 256 * 1024

REPLY_BACKLOG: Final = 1000
_ids = itertools.count(1)


__all__ = ["ALL", "Broadcast", "StreamHub", "Subscriber", "parse_channel"]


@dataclass(eq=False)
class Subscriber:
    """One live connection: its rooms, its bounded buffer and what it lost."""

    kind: str
    buffer_size: int
    # Takes several messages per frame (`/ws?batch=true`): the hub hands it pre-joined chunks.
    batched: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    all: bool = False
    sessions: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    # Your own channel names, for broadcasts (telemetry.broadcast("alerts", ...)).
    rooms: set[str] = field(default_factory=set)
    dropped: int = 0
    sent: int = 0
    closed: bool = False
    _reported_dropped: int = 0
    # (text, messages in it): one message, or for batched subscribers several joined by commas.
    _buffer: deque[tuple[str, int]] = field(init=False, default_factory=deque)
    _buffered: int = 0
    # The fan-out thread fills the buffer while the loop empties it.
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _replies: deque[str] = field(init=False, default_factory=deque)
    _ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _drained: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def subscribe(self, channel: str) -> None:
        """Join a room: all, session:<id>, category:<name> or a broadcast channel of your own."""
        kind, value = parse_channel(channel)
        if kind == ALL:
            self.all = True
        else:
            self._rooms(kind).add(str(value))

    def unsubscribe(self, channel: str) -> None:
        """Leave a room (leaving one not joined is fine)."""
        kind, value = parse_channel(channel)
        if kind == ALL:
            self.all = False
        else:
            self._rooms(kind).discard(str(value))

    def _rooms(self, kind: str) -> set[str]:
        return self.sessions if kind == "session" else self.categories if kind == "category" else self.rooms

    def channels(self) -> list[str]:
        """Return the rooms this connection is in."""
        return ([ALL] if self.all else []) + [f"session:{s}" for s in sorted(self.sessions)] + \
            [f"category:{c}" for c in sorted(self.categories)] + sorted(self.rooms)

    def routing(self) -> tuple[bool, frozenset[str], frozenset[str], frozenset[str], bool]:
        """Return what decides which messages this connection gets and how: equal keys, equal messages."""
        return self.all, frozenset(self.sessions), frozenset(self.categories), frozenset(self.rooms), self.batched

    def receives(self, channel: str) -> bool:
        """Whether a broadcast on channel reaches this connection (it is in that room)."""
        kind, value = parse_channel(channel)
        return self.all if kind == ALL else value in self._rooms(kind)

    def match(self, event: TelemetryEvent) -> str | None:
        """Return the room an event reaches this connection through, or None."""
        if event.session_id is not None and event.session_id in self.sessions:
            return f"session:{event.session_id}"
        if event.category is not None and event.category in self.categories:
            return f"category:{event.category}"
        return ALL if self.all else None

    def offer(self, message: str) -> None:
        """Buffer one message and wake the sender (on the loop); when full, the oldest goes and is counted."""
        self.offer_chunk(message, 1)
        self._ready.set()

    def offer_chunk(self, text: str, count: int) -> None:
        """Buffer `count` messages (comma-joined when several) from any thread; the caller wakes the sender."""
        with self._lock:
            self._buffer.append((text, count))
            self._buffered += count
            # Never blocks: the oldest entries go, counted, until the buffer is within its bound again.
            while self._buffered > self.buffer_size and len(self._buffer) > 1:
                _, lost = self._buffer.popleft()
                self._buffered -= lost
                self.dropped += lost

    def wake(self) -> None:
        """Tell the sender messages wait (on the loop)."""
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
        """Wait up to `timeout` for messages; [] on timeout (time for a heartbeat), None once closed.

        For a batched subscriber an item may hold several comma-joined messages: see next_frames.
        """
        taken = await self._take(timeout)
        return None if taken is None else taken[0]

    async def next_frames(self, timeout: float) -> list[str] | None:
        """Like next_batch, but ready to send: batched subscribers get one `batch` frame for several messages."""
        taken = await self._take(timeout)
        if taken is None:
            return None
        items, count = taken
        if not (self.batched and count > 1):
            return items
        # Several frames when the messages are many: a client's WebSocket library refuses frames over its
        # limit (1 MiB by default in `websockets`); 256 Ki characters stay under it even as 4-byte UTF-8.
        frames: list[str] = []
        part: list[str] = []
        size = 0
        for item in items:
            if part and size + len(item) > FRAME_CHARS:
                frames.append('{"type":"batch","messages":[' + ",".join(part) + "]}")
                part, size = [], 0
            part.append(item)
            size += len(item) + 1
        frames.append('{"type":"batch","messages":[' + ",".join(part) + "]}")
        return frames

    async def _take(self, timeout: float) -> tuple[list[str], int] | None:
        if not self._buffer and not self._replies and not self.closed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return [], 0
        self._ready.clear()
        if self.closed:
            return None
        with self._lock:
            buffered, count = list(self._buffer), self._buffered
            self._buffer.clear()
            self._buffered = 0
            dropped = self.dropped
        items = [*self._replies, *(text for text, _ in buffered)]
        count += len(self._replies)
        self._replies.clear()
        self._drained.set()
        if dropped != self._reported_dropped:
            lost = dropped - self._reported_dropped
            self._reported_dropped = dropped
            items.insert(0, json.dumps({"type": "dropped", "count": lost, "total": dropped}))
            count += 1
        self.sent += count
        return items, count

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
        self._pending: deque[TelemetryEvent | Broadcast] = deque()
        self._wakeup = threading.Event()
        self._fanout: threading.Thread | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._telemetry: Telemetry | None = None
        self._local = True  # fed by this process's writer (else by a ReplicaFeed)
        self._lock = threading.Lock()
        self.delivered = 0
        self.dropped_closed = 0

    # -- lifecycle (the server's lifespan) --------------------------------------------------------

    def attach(self, telemetry: Telemetry, loop: asyncio.AbstractEventLoop, *, local: bool = True) -> None:
        """Listen to `event:tracked` of `telemetry`, delivering on `loop`.

        local=False: not to `event:tracked`; a ReplicaFeed (server/replica_feed.py) publishes every replica's events.
        """
        self._loop = loop
        self._telemetry = telemetry
        self._local = local
        self._stopping = False
        self._fanout = threading.Thread(target=self._fanout_loop, name="vibekit-telemetry-fanout", daemon=True)
        self._fanout.start()
        if local:
            telemetry.on("events:tracked", self._on_tracked)
        # Broadcasts (plugins) are not stored events: they reach this replica's subscribers only.
        telemetry.on(BROADCAST_EVENT, self.publish)

    def detach(self) -> None:
        """Stop listening, stop the fan-out thread and end every open stream."""
        if self._telemetry is not None:
            if self._local:
                self._telemetry.off("events:tracked", self._on_tracked)
            self._telemetry.off(BROADCAST_EVENT, self.publish)
            self._telemetry = None
        self._stopping = True
        self._wakeup.set()
        if self._fanout is not None:
            self._fanout.join(5.0)
            self._fanout = None
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

    def add(self, kind: str, channels: Iterable[str] = (), *, batched: bool = False) -> Subscriber:
        """Register a connection in the given rooms; raise OverflowError when at max_clients."""
        if len(self._subscribers) >= self.max_clients:
            raise OverflowError(f"at most {self.max_clients} live-stream connections")
        subscriber = Subscriber(kind, self.buffer_size, batched)
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

    def _on_tracked(self, events: list[TelemetryEvent]) -> None:
        """On the writer thread, once per commit: queue the events and wake the fan-out thread; nothing else."""
        if not self._subscribers:
            return
        self._pending.extend(events)
        self._wakeup.set()

    def publish(self, item: TelemetryEvent | Broadcast) -> None:
        """The hub's one way in: deliver an event or a broadcast to its subscribers (any thread; sent shortly).

        The Telemetry's broadcasts arrive here; so can messages relayed from elsewhere (other replicas).
        """
        if not self._subscribers:
            return
        self._pending.append(item)
        self._wakeup.set()

    def _fanout_loop(self) -> None:
        while not self._stopping:
            self._wakeup.wait()
            self._wakeup.clear()
            try:
                while self._pending and not self._stopping:
                    self._round()
            except Exception:  # a bug here must not end live streams for good
                logger.exception("live-stream fan-out failed; continuing")

    def _round(self) -> None:
        """Fan out one slice of pending events (at most one buffer's worth, so a chunk fits a buffer)."""
        pending = self._pending
        size = max(1, min(256, self.buffer_size))
        events = [pending.popleft() for _ in range(min(size, len(pending)))]
        groups: dict[tuple[bool, frozenset[str], frozenset[str], frozenset[str], bool], list[Subscriber]] = {}
        for subscriber in self._subscribers:
            groups.setdefault(subscriber.routing(), []).append(subscriber)
        encoded: dict[int, str] = {}
        touched: list[Subscriber] = []
        delivered = 0
        for members in groups.values():
            sample = members[0]
            messages: list[str] = []
            for index, event in enumerate(events):
                if isinstance(event, Broadcast):
                    if sample.receives(event.channel):
                        body = encoded.get(index)
                        if body is None:
                            body = encoded[index] = event.message()
                        messages.append(body)
                    continue
                channel = sample.match(event)
                if channel is None:
                    continue
                body = encoded.get(index)
                if body is None:
                    body = encoded[index] = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False,
                                                       default=str)
                messages.append(f'{{"type":"event","channel":{json.dumps(channel)},"event":{body}}}')
            if not messages:
                continue
            if sample.batched:
                chunk = ",".join(messages)  # once for the whole group
                for subscriber in members:
                    subscriber.offer_chunk(chunk, len(messages))
            else:
                for subscriber in members:
                    for message in messages:
                        subscriber.offer_chunk(message, 1)
            touched.extend(members)
            delivered += len(messages) * len(members)
        self.delivered += delivered
        loop = self._loop
        if touched and loop is not None:
            try:
                loop.call_soon_threadsafe(_wake, touched)
            except RuntimeError:  # the loop has closed: the server is stopping
                pending.clear()


def _wake(subscribers: list[Subscriber]) -> None:
    """On the loop: wake each sender once for the round."""
    for subscriber in subscribers:
        subscriber.wake()
