"""SQLite's deferred text index (migration 0005): exact searches before, during and after indexing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import ev, locked_by_another
from sqlalchemy import create_engine

from vibekit_telemetry.query import QueryFilter, parse_query
from vibekit_telemetry.store import migrate
from vibekit_telemetry.store.sql import SQLStore


def _mark(store: SQLStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(
            "SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid'").scalar_one())


def _top(store: SQLStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT MAX(rowid) FROM events").scalar_one())


def _fts_rows(store: SQLStore, needle: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH ?",
                                        ('"' + needle + '"',)).scalar_one())


def _labels(store: SQLStore, needle: str, **kw: object) -> list[str | None]:
    return [e.label or e.stream_data for e in store.query(QueryFilter(contains=needle, **kw))]  # type: ignore[arg-type]


def _lazy(path: Path, **kw: object) -> SQLStore:
    store = SQLStore(path, text_index_rows=kw.pop("rows", 1000), text_index_delay_s=kw.pop("delay", 3600.0))  # type: ignore[arg-type]
    store.initialize()
    return store


def test_no_insert_trigger_and_searches_are_exact_before_and_after_indexing(tmp_path: Path) -> None:
    store = _lazy(tmp_path / "t.db")
    triggers = {r[0] for r in sqlite3.connect(tmp_path / "t.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "events_fts_ai" not in triggers and {"events_fts_ad", "events_fts_au"} <= triggers
    store.store_batch([ev("start", label="alpha needle one"), ev("stream", at=1, stream_data="no match"),
                       ev("stream", at=2, stream_data="second NEEDLE here")])
    assert _mark(store) == 0 and _fts_rows(store, "needle") == 0  # nothing indexed yet
    assert _labels(store, "eedl") == ["alpha needle one", "second NEEDLE here"]
    assert store.index_text(max_rows=2) == 2  # bounded: rows 1 and 2
    assert _mark(store) == 2 and _fts_rows(store, "needle") == 1
    store.store_batch([ev("stream", at=3, stream_data="third needle")])
    # Index up to the watermark, scan above it: each hit once, ordered, limit and offset applied.
    assert _labels(store, "needle") == ["alpha needle one", "second NEEDLE here", "third needle"]
    assert _labels(store, "needle", order="desc", limit=2) == ["third needle", "second NEEDLE here"]
    assert _labels(store, "needle", offset=1, limit=1) == ["second NEEDLE here"]
    assert store.index_text() == 2 and _mark(store) == 4
    assert _labels(store, "needle") == ["alpha needle one", "second NEEDLE here", "third needle"]
    assert store.check() == []
    store.shutdown()


def test_writes_never_index_and_index_text_catches_up_in_bounded_steps(tmp_path: Path) -> None:
    store = _lazy(tmp_path / "t.db", rows=10)
    marks = []
    for b in range(3):
        store.store_batch([ev("stream", at=b * 10 + i, stream_data=f"chunk {i}") for i in range(6)])
        marks.append(_mark(store))
    assert marks == [0, 0, 0]  # indexing is periodic work, never part of a write
    assert store.index_text(10) == 10 and _mark(store) == 10  # one bounded step
    assert [e.stream_data for e in store.query(parse_query(contains="chunk 5"))] == ["chunk 5"] * 3  # still exact
    store.flush()  # flush indexes the rest
    assert _mark(store) == 18
    store.shutdown()


def test_telemetrys_scheduler_catches_the_index_up_behind_the_writer(tmp_path: Path) -> None:
    import time

    from vibekit_telemetry import Telemetry

    telemetry = Telemetry(db_path=str(tmp_path / "s.db"), stream_flush_interval_ms=20)
    sid = telemetry.track_start("claude", "code", "index me")
    for i in range(100):
        telemetry.track_stream(sid, f"chunk {i}")
    assert telemetry.runtime is not None and telemetry.runtime.worker.flush(10)  # written, not yet indexed
    store: Any = telemetry.store
    deadline = time.monotonic() + 10
    while _mark(store) < 101 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _mark(store) == 101
    assert telemetry.get_health_status()["scheduler"]["text-index"]["runs"] >= 1
    telemetry.shutdown()


def test_deletes_keep_the_index_exact_and_rowids_reused_after_a_tail_delete_get_indexed(tmp_path: Path) -> None:
    store = _lazy(tmp_path / "t.db")
    store.store_batch([ev("start", "a", label="keep needle"), ev("start", "b", at=1, label="drop needle"),
                       ev("start", "c", at=2, label="tail needle")])
    store.index_text()
    assert _mark(store) == 3
    store.store_batch([ev("stream", "c", at=3, stream_data="unindexed needle")])
    assert store.clean(session_ids=["b"]) == 1  # indexed row: the delete trigger removes it
    assert store.clean(session_ids=["c"]) == 2  # the newest rows, indexed and not
    assert _labels(store, "needle") == ["keep needle"]
    assert _mark(store) == 1  # followed max(rowid) down: rowids 2.. will be reused
    store.store_batch([ev("start", "d", at=5, label="reused needle")])
    assert _labels(store, "needle") == ["keep needle", "reused needle"]
    store.index_text()
    assert _fts_rows(store, "needle") == 2 and store.check() == []
    store.shutdown()


def test_compact_and_reindex_rebuild_and_move_the_watermark(tmp_path: Path) -> None:
    store = _lazy(tmp_path / "t.db")
    store.store_batch([ev("start", f"s{i}", at=i, label=f"needle {i}") for i in range(50)])
    store.clean(older_than_ms=ev("start", at=25).timestamp)
    store.store_batch([ev("start", "late", at=60, label="late needle")])
    store.compact()  # VACUUM may renumber rowids: the index is rebuilt, the watermark is max(rowid)
    assert _mark(store) == _top(store) and _fts_rows(store, "needle") == 26
    assert len(_labels(store, "needle")) == 26
    store.store_batch([ev("start", "later", at=70, label="later needle")])
    store.reindex()
    assert _mark(store) == _top(store) and _fts_rows(store, "needle") == 27 and store.check() == []
    store.shutdown()


def test_upgrade_from_0004_indexes_everything_and_downgrade_indexes_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = _lazy(path)
    store.store_batch([ev("start", label="first needle")])
    store.index_text()
    store.store_batch([ev("stream", at=1, stream_data="tail needle")])  # above the watermark
    store.shutdown()
    engine = create_engine(f"sqlite:///{path}")
    migrate.downgrade(engine, "0004")
    raw = sqlite3.connect(path)
    names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    assert "events_fts_ai" in names and "store_meta" not in names
    # 0004's triggers index what arrives; the tail was indexed by the downgrade.
    raw.execute("INSERT INTO events (event_id, session_id, event_type, category, timestamp, label) "
                "VALUES ('raw1', 's1', 'custom', 'claude', 1700000000009, 'raw needle')")
    raw.commit()
    assert raw.execute("SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH '\"needle\"'").fetchone()[0] == 3
    raw.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
    raw.close()
    migrate.upgrade(engine)
    engine.dispose()
    store = _lazy(path)
    assert _mark(store) == 3
    assert _labels(store, "needle") == ["first needle", "tail needle", "raw needle"]
    assert store.check() == []
    store.shutdown()


def test_write_heavy_store_skips_text_indexing_and_still_finds_text(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "w.db", enable_indexes=False, text_index_rows=1, text_index_delay_s=0.0)
    store.initialize()
    store.store_batch([ev("start", label="find the needle"), ev("stream", at=1, stream_data="haystack")])
    store.flush()
    assert _mark(store) == 0 and _fts_rows(store, "needle") == 0  # nothing indexed, ever
    assert _labels(store, "eedl") == ["find the needle"]          # `contains` scans instead
    store.shutdown()
    reindexed = SQLStore(tmp_path / "w.db", enable_indexes=False, text_index=True)
    reindexed.initialize()
    reindexed.flush()
    assert _mark(reindexed) == _top(reindexed) and _fts_rows(reindexed, "needle") == 1
    reindexed.shutdown()


@pytest.mark.parametrize("indexed", [True, False])
def test_a_needle_with_a_nul_character_matches_exactly(backend: str, store: Any, indexed: bool) -> None:
    # FTS5 and LIKE stop reading a pattern at NUL: the search was a 500 (found by test_api_fuzz).
    store.store_batch([ev("start", "s1", label="plain label"), ev("stream", "s1", at=1, stream_data="chunk")])
    if backend != "postgresql":  # PostgreSQL text cannot hold NUL: the store refuses such rows
        store.store_batch([ev("stream", "s2", at=2, stream_data="ab\x00cd")])
    if indexed and backend == "sqlite":
        store.flush()  # every row in the text index: the indexed path, not the scanned tail
    found = [e.stream_data for e in store.query(parse_query(contains="B\x00C"))]
    assert found == ([] if backend == "postgresql" else ["ab\x00cd"])
    assert store.query(parse_query(contains="label\x00")) == []


def test_flush_within_keeps_to_its_time_behind_another_process_and_behind_maintenance(tmp_path: Path) -> None:
    # flush() brings the text index up to date; its steps wait busy_timeout (5 s) for another
    # connection's lock, and the store's own lock for as long as maintenance holds it. flush_within
    # gives up (False) in its time instead, and finishes once the way is clear.
    store = _lazy(tmp_path / "t.db")
    store.store_batch([ev("stream", at=i, stream_data=f"needle {i}") for i in range(50)])
    assert store.unindexed_rows() == 50
    with locked_by_another(tmp_path / "t.db", "EXCLUSIVE"):
        started = time.monotonic()
        assert store.flush_within(0.5) is False
        assert time.monotonic() - started < 2.0
    assert store.unindexed_rows() == 50 and _mark(store) == 0  # nothing half done
    # The store's lock held by maintenance (here: a thread inside it, as the scheduler's VACUUM is).
    held, release = threading.Event(), threading.Event()

    def maintenance() -> None:
        with store._lock:
            held.set()
            release.wait(10)

    worker = threading.Thread(target=maintenance)
    worker.start()
    assert held.wait(5)
    try:
        started = time.monotonic()
        assert store.flush_within(0.5) is False
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        worker.join()
    assert store.flush_within(10) is True
    assert store.unindexed_rows() == 0 and _fts_rows(store, "needle") == 50
    # The usual busy_timeout is back on the writer after the lowered one.
    assert store._writer.execute("PRAGMA busy_timeout").fetchone()[0] == store.busy_timeout_ms
    store.shutdown()
