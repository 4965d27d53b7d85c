"""Writer metrics in the store (writer_runs, migration 0007): upsert, newest first, window, pruning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

from vibekit_telemetry.events import now_ms
from vibekit_telemetry.store import QueryableStore, migrate
from vibekit_telemetry.store.sql import SQLStore

T = 1_700_000_000_000


def _run(run_id: str, **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "service_name": "svc", "service_version": "1.0", "host": "box", "pid": 42,
            "started_at": T, "updated_at": T + 1000, "events_written": 10, "batches": 2,
            "total_batch_ms": 3.5, "last_batch_ms": 1.5, "max_batch_ms": 2.0, "dropped": 0,
            "queue_depth": 0, "queue_capacity": 50_000, "plugins": None, "sessions_seen": 0, "sessions_kept": 0,
            **fields}


def test_record_upserts_by_run_id_and_lists_newest_first(store: QueryableStore) -> None:
    s: Any = store
    assert s.writer_runs() == []
    s.record_writer_run(_run("a"))
    s.record_writer_run(_run("b", updated_at=T + 5000, events_written=3))
    # A later record of the same run replaces its counters and keeps its first started_at.
    s.record_writer_run(_run("a", started_at=T + 999, updated_at=T + 9000, events_written=25, batches=4,
                             max_batch_ms=7.25, dropped=1, queue_depth=3))
    runs = s.writer_runs()
    assert [r["run_id"] for r in runs] == ["a", "b"]
    a = runs[0]
    assert a == _run("a", updated_at=T + 9000, events_written=25, batches=4, max_batch_ms=7.25, dropped=1,
                     queue_depth=3)
    assert [r["run_id"] for r in s.writer_runs(since_ms=T + 6000)] == ["a"]
    assert [r["run_id"] for r in s.writer_runs(limit=1)] == ["a"]
    assert s.writer_runs(since_ms=T + 10_000) == []


def test_missing_fields_default_and_bad_input_is_refused(store: QueryableStore) -> None:
    s: Any = store
    before = now_ms()
    s.record_writer_run({"run_id": "x", "events_written": 5})
    (run,) = s.writer_runs()
    assert run["events_written"] == 5 and run["batches"] == 0 and run["total_batch_ms"] == 0
    assert run["updated_at"] >= before and run["started_at"] == run["updated_at"]
    with pytest.raises(ValueError, match="run_id"):
        s.record_writer_run({"events_written": 1})
    with pytest.raises(ValueError, match="colour"):
        s.record_writer_run({"run_id": "y", "colour": "red"})


def test_clean_everything_leaves_writer_runs(store: QueryableStore) -> None:
    s: Any = store
    s.record_writer_run(_run("a"))
    store.clean()
    assert [r["run_id"] for r in s.writer_runs()] == ["a"]


# The tests below run on the SQL backends only (memory has no pruning, shutdown or migrations).
sql_only = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@sql_only
def test_prune_days_drops_stale_runs(make_store: Callable[..., SQLStore]) -> None:
    store = make_store(prune_days=30)
    now = now_ms()
    store.record_writer_run(_run("stale", started_at=now - 40 * 86_400_000, updated_at=now - 31 * 86_400_000))
    store.record_writer_run(_run("fresh", started_at=now - 40 * 86_400_000, updated_at=now - 1000))
    store.prune()
    assert [r["run_id"] for r in store.writer_runs()] == ["fresh"]


@sql_only
def test_record_after_shutdown_raises(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    store.shutdown()
    with pytest.raises(Exception, match="shut down"):
        store.record_writer_run(_run("a"))


@sql_only
def test_downgrade_0006_drops_writer_runs_and_upgrade_restores_it(make_store: Callable[..., SQLStore]) -> None:
    store = make_store()
    store.record_writer_run(_run("a"))
    url = store.url
    store.shutdown()
    engine = create_engine(url)
    try:
        migrate.downgrade(engine, "0006")
        assert "writer_runs" not in inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert "writer_runs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    again = make_store()
    again.record_writer_run(_run("b"))
    assert [r["run_id"] for r in again.writer_runs()] == ["b"]
