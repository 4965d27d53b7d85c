"""PostgreSQL inserts new event ids with no ON CONFLICT: an id another writer commits meanwhile is skipped."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'vibekit-telemetry[postgres]')")


def test_an_id_committed_by_another_writer_during_the_copy_is_stored_once(pg_url: str) -> None:
    store = SQLStore(pg_url)
    store.initialize()
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        other = psycopg.connect(dsn)                       # another replica's writer, mid-transaction
        # As a replica's writer does: the id into event_ids (unique across partitions), the row into events.
        other.execute("INSERT INTO event_ids (event_id, timestamp) VALUES ('dup-1', 1)")
        other.execute("INSERT INTO events (event_id, event_type, category, timestamp) "
                      "VALUES ('dup-1', 'custom', 'other', 1)")
        result: dict[str, Any] = {}

        def write() -> None:
            # The id lookup cannot see the uncommitted row; the insert then waits on the unique index.
            batch = [TelemetryEvent("custom", "claude", label="mine", timestamp=now_ms(), event_id=f"dup-{i}")
                     for i in range(3)]
            result["stored"] = store.store_batch(batch)

        writer = threading.Thread(target=write)
        writer.start()
        with psycopg.connect(dsn, autocommit=True) as watch:
            for _ in range(600):  # until our insert (a CTE of the batch's one statement) waits on the lock
                waiting = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND query LIKE '%INSERT INTO event_ids%'").fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the writer's insert into event_ids never waited on the other writer's lock")
        other.commit()                                     # the insert now hits a unique violation
        other.close()
        writer.join(timeout=30)
        assert not writer.is_alive()
        events = {e.event_id: e.category for e in store.query(QueryFilter())}
        assert events == {"dup-0": "claude", "dup-1": "other", "dup-2": "claude"}
        assert "stored" in result                          # no error reached the caller
    finally:
        store.shutdown()
