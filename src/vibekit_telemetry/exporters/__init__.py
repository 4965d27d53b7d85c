"""Exporters: destinations that follow the primary store by a persisted cursor, each on its own thread.

Names load on first use, so importing this package costs nothing until an exporter is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backoff import Backoff
    from .base import BaseExporter, Exporter, PoisonBatchError
    from .breaker import CircuitBreaker
    from .bus import BusFeed
    from .follower import StoreFollower
    from .manager import ExporterSet
    from .webhook import WebhookExporter

_EXPORTS = {
    "Backoff": "backoff", "BaseExporter": "base", "Exporter": "base", "PoisonBatchError": "base",
    "CircuitBreaker": "breaker", "BusFeed": "bus", "StoreFollower": "follower", "ExporterSet": "manager",
    "WebhookExporter": "webhook",
}

__all__ = ["Backoff", "BaseExporter", "BusFeed", "CircuitBreaker", "Exporter", "ExporterSet", "PoisonBatchError",
           "StoreFollower", "WebhookExporter"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
