"""Metadata filters on PostgreSQL use the jsonb GIN index (ix_events_metadata_gin) and stay exact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pgscale_db import fresh_database
from sqlalchemy import select, text

from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.schema import events
from vibekit_telemetry.store.sql import SQLStore
from vibekit_telemetry.store.sql.read import event_conditions


@pytest.fixture
def store() -> Iterator[SQLStore]:
    """A PostgreSQL store in a new database of this test's own."""
    with fresh_database() as url:
        found = SQLStore(url)
        found.initialize()
        try:
            yield found
        finally:
            found.shutdown()


def _ids(store: SQLStore, **metadata: object) -> list[str | None]:
    return [e.event_id for e in store.query(QueryFilter(metadata=metadata))]


def test_a_metadata_filter_is_planned_on_the_gin_index(store: SQLStore) -> None:
    t = now_ms()
    store.store_batch([TelemetryEvent("custom", "a", session_id="s", timestamp=t + i, event_id=f"e{i}",
                                      metadata={"model": f"m{i % 50}", "n": i}) for i in range(2000)])
    stmt = select(events.c.event_id).where(*event_conditions(QueryFilter(metadata={"model": "m7"}), store.sql, False))
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE events"))
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
        # Each partition has its own copy of the partitioned index.
        copies = set(conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                       "WHERE i.inhparent = 'ix_events_metadata_gin'::regclass")).scalars())
    assert any(f"Bitmap Index Scan on {name}" in plan for name in copies), plan
    assert len(_ids(store, model="m7")) == 40


def test_metadata_filters_keep_their_exact_meaning(store: SQLStore) -> None:
    t = now_ms()
    rows = {"int": {"v": 1}, "float": {"v": 1.0}, "true": {"v": True}, "list": {"v": [1, 2]},
            "obj": {"v": {"a": 1, "b": 2}}, "nul": {"v": "a\u0000b"}, "null": {"v": None}, "none": {}}
    store.store_batch([TelemetryEvent("custom", "a", session_id="s", timestamp=t + i, event_id=k, metadata=m)
                       for i, (k, m) in enumerate(rows.items())])
    assert _ids(store, v=1) == ["int", "float"]  # numbers by value; true is not 1
    assert _ids(store, v=True) == ["true"]
    assert _ids(store, v=[1, 2]) == ["list"] and _ids(store, v=[1]) == []  # containment alone would match
    assert _ids(store, v={"a": 1}) == []
    assert _ids(store, v="a\u0000b") == ["nul"]  # jsonb refuses \u0000: stored and found all the same
    assert _ids(store, v=None) == ["null", "none"]  # a missing key equals None
    [nul] = store.query(QueryFilter(metadata={"v": "a\u0000b"}))
    assert nul.metadata == {"v": "a\u0000b"}  # the stored text is the original


def test_the_store_connections_run_without_jit(store: SQLStore) -> None:
    # JIT compiled a 5 ms metadata page at 10M events for 230 ms (bench/pg_scale_queries.py): off for the
    # store's pooled connections, whatever the server's default.
    with store.engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar_one() == "off"
