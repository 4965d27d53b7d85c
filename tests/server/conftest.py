"""Fixtures for the API server tests: a real uvicorn server on a loopback port per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Serve

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import ServerHandle, start_api_server


@pytest.fixture
def telemetry(tmp_path: Path) -> Iterator[Telemetry]:
    """A Telemetry on a fresh SQLite file whose writer flushes every 5 ms (live streams stay prompt)."""
    instance = Telemetry(db_path=str(tmp_path / "t.db"), stream_flush_interval_ms=5)
    yield instance
    instance.shutdown()


@pytest.fixture
def serve(telemetry: Telemetry) -> Iterator[Serve]:
    """Start servers on free loopback ports (options: ServerSettings overrides); all stop afterwards."""
    handles: list[ServerHandle] = []

    def start(instance: Telemetry | None = None, **options: Any) -> ServerHandle:
        handle = start_api_server(instance or telemetry, port=0, **options)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def server(serve: Serve) -> ServerHandle:
    """A server with the default settings (auth off, default rate limits)."""
    return serve()


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    """An HTTP client bound to the default server."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
