"""Event-building helpers for the store tests, and another process's lock on a SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from vibekit_telemetry.events import TelemetryEvent

T0 = 1_700_000_000_000


def ev(kind: str, sid: str | None = "s1", category: str | None = "claude", *, at: int = 0,
       **fields: Any) -> TelemetryEvent:
    """A validated-looking event at T0 + at ms."""
    return TelemetryEvent(kind, category, session_id=sid, timestamp=T0 + at, **fields)


@contextmanager
def locked_by_another(path: Path, mode: Literal["IMMEDIATE", "EXCLUSIVE"] = "IMMEDIATE") -> Iterator[None]:
    """Hold a write lock (EXCLUSIVE: also against readers) on a SQLite file from another connection."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(f"BEGIN {mode}")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
