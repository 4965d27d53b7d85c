"""Live events for code (EventStream), batched sending (Batcher), and streaming providers."""

from __future__ import annotations

from .batcher import Batcher
from .broadcast import Broadcast
from .events import EventFilter, EventStream
from .providers import ChannelProvider, GrpcProvider, SSEProvider, StreamingProvider, WebSocketProvider

__all__ = ["Batcher", "Broadcast", "ChannelProvider", "EventFilter", "EventStream", "GrpcProvider", "SSEProvider",
           "StreamingProvider", "WebSocketProvider"]
