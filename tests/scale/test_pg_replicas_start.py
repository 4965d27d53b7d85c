"""Replicas started at the same moment on a new PostgreSQL database all come up (schema creation is locked)."""

from __future__ import annotations

import subprocess
import sys

from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore

# Each process opens the store (migrating a new schema) as soon as all are ready, then writes one event.
OPEN = """
import sys, time
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.store.sql import SQLStore
start_at = float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
store = SQLStore(sys.argv[1])
store.initialize()
store.store_batch([TelemetryEvent("custom", "claude", label=sys.argv[3], timestamp=now_ms())])
store.shutdown()
"""


def test_four_processes_open_a_new_database_at_once(pg_url: str) -> None:
    import time

    start_at = f"{time.time() + 4:.3f}"  # interpreters start first; then all migrate in the same instant
    processes = [subprocess.Popen([sys.executable, "-c", OPEN, pg_url, start_at, f"replica {i}"],
                                  stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], "\n".join(errors)
    store = SQLStore(pg_url)
    try:
        labels = sorted(e.label or "" for e in store.query(QueryFilter()))
        assert labels == [f"replica {i}" for i in range(4)]
        store.store_batch([TelemetryEvent("custom", "claude", label="after", timestamp=now_ms())])
    finally:
        store.shutdown()
