"""Fixtures for the exporter tests: stores of every backend and a real webhook receiver on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _exporter_helpers import Receiver

from vibekit_telemetry.store import MemoryStore

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def _pg_reason() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'vibekit-telemetry[postgres]')"
    try:
        psycopg.connect(PG_DSN).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 db 'test': {exc}".splitlines()[0]
    return None


_PG_SKIP = _pg_reason()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A postgresql+psycopg URL whose search_path is a schema created for this test and dropped after."""
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    import psycopg

    schema = "vk_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
