"""Streaming providers behind one interface (seed 000 §4.1): WebSocket, SSE and gRPC.

Every provider has in-process channels (`all`, `session:<id>`, `category:<name>`, or any name you
broadcast on): subscribe(channel, handler) and broadcast(channel, data) work the same whatever the
transport, and stream(event) puts a committed event on its channels. initialize(telemetry) feeds
stream() from the Telemetry's committed events and starts the transport: the API server's `/ws`
and `/api/stream` endpoints (shared with the server, not a second server per provider) or the gRPC
TelemetryStream service. broadcast(channel, data) on an initialized provider is the Telemetry's
broadcast: it reaches the channel's in-process handlers of every provider, and the WebSocket, SSE
and gRPC (Listen) clients subscribed to that channel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..errors import ValidationError
from ..events import TelemetryEvent
from .broadcast import BROADCAST_EVENT, Broadcast, check_channel

logger = logging.getLogger("vibekit_telemetry")

ChannelHandler = Callable[[Any], None]


@runtime_checkable
class StreamingProvider(Protocol):
    """initialize, stream, broadcast, subscribe, unsubscribe, shutdown (seed 000 §4.1)."""

    name: str

    def initialize(self, telemetry: Any) -> None:
        """Start the transport and feed stream() from the Telemetry's committed events."""

    def stream(self, event: TelemetryEvent) -> None:
        """Put one event on its channels: all, session:<id>, category:<name>."""

    def broadcast(self, channel: str, data: Any) -> None:
        """Hand data to every subscriber of channel."""

    def subscribe(self, channel: str, handler: ChannelHandler) -> None:
        """Call handler with what reaches channel."""

    def unsubscribe(self, channel: str, handler: ChannelHandler) -> None:
        """Stop calling handler for channel."""

    def shutdown(self) -> None:
        """Stop the transport and the feed."""


class ChannelProvider:
    """In-process channels; the base of every provider (and a provider of its own: name `local`)."""

    name = "local"

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[ChannelHandler, ...]] = {}
        self._lock = threading.Lock()
        self._telemetry: Any = None
        self.errors = 0

    def initialize(self, telemetry: Any) -> None:
        """Feed stream() from the Telemetry's committed events, and the channels from its broadcasts."""
        self._telemetry = telemetry
        telemetry.on("event:tracked", self.stream)
        telemetry.on(BROADCAST_EVENT, self._on_broadcast)

    def stream(self, event: TelemetryEvent) -> None:
        """Put one event on all, session:<id> and category:<name> (in-process handlers)."""
        self._deliver("all", event)
        if event.session_id:
            self._deliver(f"session:{event.session_id}", event)
        if event.category:
            self._deliver(f"category:{event.category}", event)

    def broadcast(self, channel: str, data: Any) -> None:
        """Hand data to every subscriber of channel: in-process handlers and, once initialized, every
        WebSocket, SSE and gRPC client of the Telemetry (data must then be JSON-encodable)."""
        if self._telemetry is not None:
            self._telemetry.broadcast(channel, data)  # comes back through _on_broadcast, like anyone's
        else:
            self._deliver(check_channel(channel), data)

    def _on_broadcast(self, item: Broadcast) -> None:
        self._deliver(item.channel, item.data)

    def _deliver(self, channel: str, data: Any) -> None:
        """Call every handler of channel; a failing handler is counted and logged, the rest still run."""
        for handler in self._handlers.get(channel, ()):
            try:
                handler(data)
            except Exception:
                self.errors += 1
                logger.exception("telemetry stream handler for %s failed", channel)

    def subscribe(self, channel: str, handler: ChannelHandler) -> None:
        """Call handler with what reaches channel."""
        if not callable(handler):
            raise ValidationError("handler", "a callable taking one argument", handler)
        with self._lock:  # copy-on-write: the writer thread iterates a snapshot
            self._handlers = {**self._handlers, check_channel(channel): (*self._handlers.get(channel, ()), handler)}

    def unsubscribe(self, channel: str, handler: ChannelHandler) -> None:
        """Stop calling handler for channel."""
        with self._lock:
            kept = tuple(h for h in self._handlers.get(channel, ()) if h != handler)
            self._handlers = {**self._handlers, channel: kept}

    def shutdown(self) -> None:
        """Stop the feed."""
        if self._telemetry is not None:
            self._telemetry.off("event:tracked", self.stream)
            self._telemetry.off(BROADCAST_EVENT, self._on_broadcast)
            self._telemetry = None


class _ServerProvider(ChannelProvider):
    """The API server's live endpoints: uses a running server's handle, or starts one on initialize."""

    path = "/ws"

    def __init__(self, server: Any = None, *, port: int = 0, host: str = "127.0.0.1", **options: Any) -> None:
        super().__init__()
        self.server = server
        self.port = port
        self.host = host
        self.options = options
        self._started = False

    def initialize(self, telemetry: Any) -> None:
        """Start the API server (unless given one) and feed the channels."""
        if self.server is None:
            self.server = telemetry.start_api_server(self.port, self.host, **self.options)
            self._started = True
        super().initialize(telemetry)

    @property
    def url(self) -> str:
        """Where clients connect."""
        if self.server is None:
            raise ValidationError(self.name, "an initialized provider (call initialize(telemetry) first)")
        base = str(self.server.url).rstrip("/")
        if self.path == "/ws":  # http://h:p -> ws://h:p, https -> wss
            base = "ws" + base.removeprefix("http")
        return base + self.path

    def shutdown(self) -> None:
        """Stop the feed, and the server if this provider started it."""
        super().shutdown()
        if self._started and self.server is not None:
            self.server.stop()
            self._started = False


class WebSocketProvider(_ServerProvider):
    """WebSocket clients on the API server's `/ws` (subscribe/unsubscribe messages, session and category rooms)."""

    name = "websocket"
    path = "/ws"


class SSEProvider(_ServerProvider):
    """Server-Sent Events on the API server's `/api/stream` (?session_id=, ?category=)."""

    name = "sse"
    path = "/api/stream"


class GrpcProvider(ChannelProvider):
    """The gRPC TelemetryStream service (extra `grpc`): Subscribe by session or category, Ingest batches."""

    name = "grpc"

    def __init__(self, *, port: int = 50051, host: str = "127.0.0.1", **options: Any) -> None:
        super().__init__()
        self.port = port
        self.host = host
        self.options = options
        self.server: Any = None

    def initialize(self, telemetry: Any) -> None:
        """Start the gRPC server and feed the channels."""
        from .grpc_service import GrpcStreamServer

        self.server = GrpcStreamServer(telemetry, self.port, self.host, **self.options).start()
        super().initialize(telemetry)

    @property
    def target(self) -> str:
        """host:port for gRPC clients."""
        if self.server is None:
            raise ValidationError(self.name, "an initialized provider (call initialize(telemetry) first)")
        return str(self.server.target)

    def shutdown(self) -> None:
        """Stop the feed and the gRPC server."""
        super().shutdown()
        if self.server is not None:
            self.server.stop()
            self.server = None
