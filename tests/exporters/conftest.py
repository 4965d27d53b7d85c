"""Fixtures for the exporter tests: stores of every backend and a real webhook receiver on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _exporter_helpers import Receiver

from vibekit_telemetry.store import MemoryStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a change-log test runs on."""
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Create stores of the test's backend, all on one database (memory: one shared store)."""
    made: list[Any] = []
    url = str(tmp_path / "data" / "telemetry.db")
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    shared = MemoryStore()

    def make() -> Any:
        if backend == "memory":
            return shared
        from vibekit_telemetry.store import SQLStore

        store = SQLStore(url)
        store.initialize()
        made.append(store)
        return store

    yield make
    for store in made:
        store.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver, closed after the test."""
    r = Receiver()
    r.start()
    yield r
    r.stop()
