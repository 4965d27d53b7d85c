"""Live events for code (EventStream), batched sending (Batcher), and streaming providers."""

from __future__ import annotations

from .batcher import Batcher
from .events import EventFilter, EventStream

__all__ = ["Batcher", "EventFilter", "EventStream"]
