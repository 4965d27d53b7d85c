"""Fixtures for the OTLP tests: the capture server, our API server, Telemetry instances on SQLite files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto", reason="the otlp extra is not installed (pip install '.[otlp]')")

from _otlp_support import Capture

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import ServerHandle, start_api_server


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variables from the outer shell reach the exporters under test."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def capture() -> Iterator[Capture]:
    """A running capture server."""
    server = Capture().start()
    yield server
    server.stop()


@pytest.fixture
def make_telemetry(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    """Telemetry instances on SQLite files in tmp_path, shut down afterwards."""
    made: list[Telemetry] = []

    def make(name: str = "t.db", **options: Any) -> Telemetry:
        options.setdefault("stream_flush_interval_ms", 5)
        instance = Telemetry(db_path=str(tmp_path / name), **options)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.shutdown()


@pytest.fixture
def receiver(make_telemetry: Callable[..., Telemetry]) -> Iterator[tuple[Telemetry, ServerHandle]]:
    """Our API server (the OTLP receiver) on a loopback port, over its own SQLite store."""
    telemetry = make_telemetry("receiver.db")
    handle = start_api_server(telemetry, port=0)
    yield telemetry, handle
    handle.stop()
