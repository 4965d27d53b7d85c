"""Fixtures for the export tests: recording Telemetry instances on memory stores or real SQLite files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vibekit_telemetry import Telemetry


@pytest.fixture
def make_memory() -> Iterator[Callable[..., Telemetry]]:
    """Create Telemetry instances on in-memory stores; all are shut down afterwards."""
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        options.setdefault("storage", [{"type": "memory"}])
        options.setdefault("stream_flush_interval_ms", 10)
        telemetry = Telemetry(raise_on_error=True, **options)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()
