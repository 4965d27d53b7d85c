"""Helpers for the dashboard tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vibekit_telemetry.server import ServerHandle

Serve = Callable[..., ServerHandle]


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions (imported late: playwright is optional)."""
    from playwright.sync_api import expect as _expect

    return _expect(target)
