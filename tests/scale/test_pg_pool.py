"""PostgreSQL pool options: pool_size caps the store's connections, idle_timeout replaces idle ones."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.factory import build_providers


def _store(pg_url: str, **options: Any) -> Any:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    [store] = build_providers(load_config(storage=[{"type": "postgresql", "options": {"url": url, **options}}]))
    store.initialize()
    return store


def test_pool_size_caps_connections_under_concurrent_reads(pg_url: str) -> None:
    store = _store(pg_url, poolSize=3)                     # the seed's camelCase spelling works too
    try:
        store.store_batch([TelemetryEvent("custom", "claude", label="x", timestamp=now_ms())])
        pids: set[int] = set()
        found: list[int] = []
        barrier = threading.Barrier(8)

        def read() -> None:
            barrier.wait()
            with store.engine.connect() as conn:
                pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                conn.execute(text("SELECT pg_sleep(0.05)"))
            found.append(len(store.query(QueryFilter())))

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Eight readers shared the two connections the writer leaves free (no overflow).
        assert 1 <= len(pids) <= 2 and found == [1] * 8
    finally:
        store.shutdown()


def test_idle_timeout_replaces_a_connection_left_idle(pg_url: str) -> None:
    store = _store(pg_url, pool_size=2, idleTimeout=50)     # milliseconds, as the seed has it
    try:
        with store.engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with store.engine.connect() as conn:                # straight back: the same connection
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        time.sleep(0.2)                                     # idle past the timeout
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first
    finally:
        store.shutdown()


@pytest.mark.parametrize(("options", "field"), [
    ({"pool_size": 1}, "storage[0].options.pool_size"),
    ({"pool_size": "ten"}, "storage[0].options.pool_size"),
    ({"idle_timeout": 0}, "storage[0].options.idle_timeout"),
])
def test_bad_pool_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_providers(load_config(storage=[{"type": "postgresql",
                                              "options": {"url": "postgresql://h/db", **options}}]))
    assert info.value.field == field
