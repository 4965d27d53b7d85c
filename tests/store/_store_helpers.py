"""Event-building helpers for the store tests."""

from __future__ import annotations

from typing import Any

from vibekit_telemetry.events import TelemetryEvent

T0 = 1_700_000_000_000


def ev(kind: str, sid: str | None = "s1", category: str | None = "claude", *, at: int = 0,
       **fields: Any) -> TelemetryEvent:
    """A validated-looking event at T0 + at ms."""
    return TelemetryEvent(kind, category, session_id=sid, timestamp=T0 + at, **fields)
