"""Live events for code (EventStream), batched sending (Batcher), and streaming providers."""

from __future__ import annotations

from .batcher import Batcher
from .events import EventFilter, EventStream
from .providers import ChannelProvider, GrpcProvider, SSEProvider, StreamingProvider, WebSocketProvider

__all__ = ["Batcher", "ChannelProvider", "EventFilter", "EventStream", "GrpcProvider", "SSEProvider",
           "StreamingProvider", "WebSocketProvider"]
