"""vibekit-telemetry: local-first telemetry for AI-agent applications and command-line tools.

Importing the package is cheap: names load on first use, so `import vibekit_telemetry` pulls in
neither SQLAlchemy nor pydantic until a Telemetry is created.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config import StorageConfig, TelemetryConfig
    from .errors import StoreError, TelemetryError, UnknownSessionError, ValidationError
    from .events import EventBuilder, TelemetryEvent
    from .query import QueryFilter, SessionFilter, StatsFilter
    from .service import Telemetry, TelemetryService
    from .sessions import SessionContext
    from .store.base import BaseStorageProvider, BatchResult, Session, Stats, StorageProvider

_EXPORTS = {
    "Telemetry": "service", "TelemetryService": "service",
    "TelemetryConfig": "config", "StorageConfig": "config",
    "TelemetryEvent": "events", "EventBuilder": "events",
    "QueryFilter": "query", "SessionFilter": "query", "StatsFilter": "query",
    "SessionContext": "sessions",
    "TelemetryError": "errors", "ValidationError": "errors", "StoreError": "errors",
    "UnknownSessionError": "errors",
    "BaseStorageProvider": "store.base", "BatchResult": "store.base", "Session": "store.base",
    "Stats": "store.base", "StorageProvider": "store.base",
}

__all__ = [
    "BaseStorageProvider", "BatchResult", "EventBuilder", "QueryFilter", "Session", "SessionContext",
    "SessionFilter", "Stats", "StatsFilter", "StorageConfig", "StorageProvider", "StoreError", "Telemetry",
    "TelemetryConfig", "TelemetryError", "TelemetryEvent", "TelemetryService", "UnknownSessionError",
    "ValidationError", "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vibekit_telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
