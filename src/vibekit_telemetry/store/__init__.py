"""Storage: the provider interface, the SQL store (SQLite / PostgreSQL) and the memory store.

SQLStore is imported on first use, so `import vibekit_telemetry.store` does not pull in SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    BaseStorageProvider,
    BatchResult,
    GroupStats,
    QueryableStore,
    Session,
    Stats,
    StorageProvider,
)
from .memory import MemoryStore

if TYPE_CHECKING:
    from .sql import SQLStore

__all__ = [
    "BaseStorageProvider",
    "BatchResult",
    "GroupStats",
    "MemoryStore",
    "QueryableStore",
    "SQLStore",
    "Session",
    "Stats",
    "StorageProvider",
]


def __getattr__(name: str) -> Any:
    if name == "SQLStore":
        from .sql import SQLStore

        return SQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
