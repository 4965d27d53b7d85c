"""The PostgreSQL writer over many commits: rows locked in key order (no deadlocks), id lookups never prepared."""

from __future__ import annotations

import threading

import pytest

from vibekit_telemetry.errors import TransientStoreError
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.store.sql import SQLStore

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'vibekit-telemetry[postgres]')")

ROUNDS = 60


def test_writers_taking_rows_in_opposite_orders_all_commit(pg_url: str) -> None:
    # Each batch updates sessions "a" and "b" and the rollup rows of two agents; one writer names them
    # a-then-b, the other b-then-a. Rows locked in batch order would deadlock (PostgreSQL then aborts
    # one writer after deadlock_timeout); in key order they queue behind each other instead.
    stores = [SQLStore(pg_url), SQLStore(pg_url)]
    for store in stores:
        store.initialize()
    at = now_ms()
    stores[0].store_batch([TelemetryEvent("start", "claude", session_id="a", timestamp=at),
                           TelemetryEvent("start", "codex", session_id="b", timestamp=at)])
    errors: list[BaseException] = []

    def write(store: SQLStore, order: list[tuple[str, str]]) -> None:
        for _ in range(ROUNDS):
            batch = [TelemetryEvent("stream", category, session_id=sid, stream_data="x", timestamp=at)
                     for sid, category in order for _ in range(3)]
            try:
                store.store_batch(batch)
            except TransientStoreError as exc:  # a deadlock is reported as transient
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(stores[0], [("a", "claude"), ("b", "codex")])),
               threading.Thread(target=write, args=(stores[1], [("b", "codex"), ("a", "claude")]))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        for sid in ("a", "b"):
            session = stores[0].get_session(sid)
            assert session is not None and session.event_count == 1 + 2 * ROUNDS * 3
    finally:
        for store in stores:
            store.shutdown()


def test_the_writers_id_lookups_are_never_prepared(pg_url: str) -> None:
    # psycopg prepares a statement on its fifth run; a generic plan made while event_ids was small kept
    # scanning the whole table ever after (33 ms a commit at 30k ids). The lookups are planned each time.
    store = SQLStore(pg_url)
    store.initialize()
    try:
        at = now_ms()
        for n in range(12):
            store.store_batch([TelemetryEvent("start", "claude", session_id=f"p{n}", timestamp=at + n),
                               TelemetryEvent("end", None, session_id=f"p{n}", timestamp=at + n + 1)])
        with store._lock:  # the writer's own connection: prepared statements are per session
            cur = store._writer.cursor()
            cur.execute("SELECT statement FROM pg_prepared_statements")
            prepared = [row[0] for row in cur.fetchall()]
            store._writer.rollback()
        assert not [s for s in prepared if "ANY(" in s], prepared
    finally:
        store.shutdown()
