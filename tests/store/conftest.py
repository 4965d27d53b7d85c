"""A `store` fixture over every backend: memory, SQLite (a real file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry.store import MemoryStore, QueryableStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name a store test runs on."""
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Create stores of the test's backend (all on one database); all are shut down afterwards."""
    made: list[Any] = []
    url = str(tmp_path / "data" / "telemetry.db")
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")

    def make(**options: Any) -> Any:
        store: Any = MemoryStore() if backend == "memory" else _sql(url, **options)
        store.initialize()
        made.append(store)
        return store

    yield make
    for store in made:
        store.shutdown()


def _sql(url: str, **options: Any) -> Any:
    from vibekit_telemetry.store import SQLStore

    return SQLStore(url, **options)


@pytest.fixture
def store(make_store: Callable[..., Any]) -> QueryableStore:
    """An initialised, empty store of the test's backend."""
    s: QueryableStore = make_store()
    return s

