"""Exceptions raised by vibekit-telemetry."""

from __future__ import annotations

from typing import Any


class TelemetryError(Exception):
    """Base class of every error this package raises."""


class ValidationError(TelemetryError, ValueError):
    """Bad input: names the field, what was expected and what was given."""

    def __init__(self, field: str, expected: str, got: Any = ..., *, message: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        if message is None:
            message = f"{field}: expected {expected}"
            if got is not ...:
                shown = repr(got)
                if len(shown) > 80:
                    shown = shown[:77] + "..."
                message += f", got {shown}"
        super().__init__(message)


class StoreError(TelemetryError):
    """The store could not be opened, read or written."""


class UnknownSessionError(ValidationError):
    """An end (or other session event) names a session the store has never seen."""

    def __init__(self, session_id: str) -> None:
        super().__init__("session_id", "the id of a started session", session_id,
                         message=f"session_id: no session {session_id!r} was started")
        self.session_id = session_id


class TransientStoreError(StoreError):
    """A passing store condition (a lock held by another process, a dropped connection): wait it out, retry."""


class DiskFullError(TransientStoreError):
    """The store's disk is full (SQLITE_FULL, ENOSPC, PostgreSQL 53100) or below min_free_disk_mb: writes wait."""


class RefusedRowError(StoreError):
    """The store refused the rows themselves (a value it cannot hold); the other rows of a batch can go in."""
