"""PostgreSQL events partitioned by time: partitions ahead, default partition, ids unique, retention by DROP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pgscale_db import fresh_database
from sqlalchemy import create_engine, text

from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import QueryFilter, StatsFilter
from vibekit_telemetry.store import migrate
from vibekit_telemetry.store.factory import build_providers
from vibekit_telemetry.store.sql import SQLStore
from vibekit_telemetry.store.sql.partitions import AHEAD, DAY_MS, aligned, partition_name

NOW = now_ms()
TODAY = aligned(NOW, DAY_MS)


@pytest.fixture
def url() -> Iterator[str]:
    """A new database of this test's own."""
    with fresh_database() as found:
        yield found


def ev(kind: str, sid: str, at: int, eid: str, **fields: Any) -> TelemetryEvent:
    """An event of agent "claude" at epoch ms `at` with a fixed id."""
    return TelemetryEvent(kind, "claude", session_id=sid, timestamp=at, event_id=eid, **fields)


def _partitions(store: SQLStore) -> dict[str, str]:
    with store.engine.connect() as conn:
        return {name: bound for name, bound in conn.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass"))}


def _where(store: SQLStore, event_id: str) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(text("SELECT tableoid::regclass::text FROM events WHERE event_id = :e"),
                                {"e": event_id}).scalar_one())


def test_new_store_has_todays_partition_and_upkeep_creates_those_ahead(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    try:
        assert set(_partitions(store)) == {"events_default", partition_name(TODAY)}
        created = store.upkeep()
        assert created == [partition_name(TODAY + i * DAY_MS) for i in range(1, AHEAD + 1)]
        assert store.upkeep() == []  # nothing left to do: idempotent
        store.store_batch([ev("start", "s1", NOW, "e-now")])
        assert _where(store, "e-now") == partition_name(TODAY)
    finally:
        store.shutdown()


def test_far_past_and_future_events_land_in_the_default_partition_and_move_when_theirs_is_made(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    try:
        future, past = NOW + 400 * DAY_MS, 86_400_000 * 3  # a year ahead; 1970-01-04
        store.store_batch([ev("start", "s1", past, "e-past"), ev("custom", "s1", future, "e-future")])
        assert _where(store, "e-past") == _where(store, "e-future") == "events_default"
        with store.engine.connect() as conn:
            seq_before = conn.execute(text("SELECT seq FROM events WHERE event_id = 'e-future'")).scalar_one()
        store.upkeep(now=future)  # the day arrives: its partition is made and the row moves into it
        assert _where(store, "e-future") == partition_name(aligned(future, DAY_MS))
        with store.engine.connect() as conn:  # same change-log position: exporters do not see it twice
            assert conn.execute(text("SELECT seq FROM events WHERE event_id = 'e-future'")).scalar_one() == seq_before
        assert [e.event_id for e in store.query(QueryFilter())] == ["e-past", "e-future"]
    finally:
        store.shutdown()


def test_a_week_option_makes_week_partitions_from_monday(url: str) -> None:
    [store] = build_providers(load_config(storage=[{"type": "postgresql", "options": {
        "url": url.replace("postgresql+psycopg://", "postgresql://"), "partition": "week"}}]))
    assert isinstance(store, SQLStore)
    store.initialize()
    try:
        monday = aligned(NOW, 7 * DAY_MS)
        assert (monday // DAY_MS + 3) % 7 == 0  # 1970-01-01 was a Thursday
        bound = _partitions(store)[partition_name(monday)]
        assert bound == f"FOR VALUES FROM ('{monday}') TO ('{monday + 7 * DAY_MS}')"
    finally:
        store.shutdown()


def test_partition_option_refuses_anything_but_day_or_week() -> None:
    with pytest.raises(ValidationError) as info:
        build_providers(load_config(storage=[{"type": "postgresql", "options": {
            "url": "postgresql://u@h/db", "partition": "month"}}]))
    assert "storage[0].options.partition" in str(info.value) and "day or week" in str(info.value)


def test_an_event_id_is_stored_once_whatever_its_timestamps(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    try:
        store.store_batch([ev("start", "s1", NOW, "dup")])
        # The same id again, a day earlier (another partition), and twice in one batch.
        result = store.store_batch([ev("custom", "s1", NOW - DAY_MS, "dup"), ev("custom", "s1", NOW + 5, "x"),
                                    ev("custom", "s1", NOW + 9, "x")])
        assert result.stored == 1
        assert [(e.event_id, e.timestamp) for e in store.query(QueryFilter())] == [("dup", NOW), ("x", NOW + 5)]
        session = store.get_session("s1")
        assert session is not None and session.event_count == 2
        assert store.get_stats(StatsFilter()).total_events == 2
    finally:
        store.shutdown()


def test_two_writers_racing_on_one_id_with_different_timestamps_store_it_once(url: str) -> None:
    stores = [SQLStore(url), SQLStore(url)]
    for store in stores:
        store.initialize()
    try:
        stores[0].store_batch([ev("start", "s1", NOW, "first")])
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def write(i: int) -> None:
            barrier.wait()
            try:  # 200 shared ids, each writer with its own timestamps (one of them a day off)
                stores[i].store_batch([ev("custom", "s1", NOW + n + i * DAY_MS * (n % 2), f"id-{n}")
                                       for n in range(200)])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        ids = [e.event_id for e in stores[0].query(QueryFilter(limit=1000))]
        assert len(ids) == len(set(ids)) == 201
        session = stores[1].get_session("s1")
        assert session is not None and session.event_count == 201
    finally:
        for store in stores:
            store.shutdown()


def test_retention_drops_whole_partitions_and_corrects_the_aggregates(url: str) -> None:
    store = SQLStore(url, prune_days=3)
    store.initialize()
    try:
        old, recent = TODAY - 10 * DAY_MS, TODAY - DAY_MS
        store.store_batch([ev("start", "old", old + 1000, "o1"), ev("end", "old", old + 2000, "o2", duration=5.0),
                           ev("start", "mixed", old + 3000, "m1"), ev("custom", "mixed", recent, "m2"),
                           ev("start", "new", recent + 5, "n1"), ev("start", "ancient", 5 * DAY_MS, "a1")])
        store.upkeep(now=old)  # a partition for the old day (moved out of the default partition)
        store.upkeep(now=recent)
        assert _where(store, "o1") == partition_name(old) and _where(store, "a1") == "events_default"
        removed = store.prune()
        assert removed == 4  # o1, o2, m1 with their partition; a1 deleted from the default partition
        assert partition_name(old) not in _partitions(store) and partition_name(recent) in _partitions(store)
        assert sorted(e.event_id for e in store.query(QueryFilter())) == ["m2", "n1"]
        assert store.get_session("old") is None and store.get_session("mixed") is not None
        stats = store.get_stats(StatsFilter())
        assert (stats.total_events, stats.total_sessions) == (2, 2)
        with store.engine.connect() as conn:  # their ids went too: a replay of o1 is stored again
            assert conn.execute(text("SELECT count(*) FROM event_ids")).scalar_one() == 2
    finally:
        store.shutdown()


def test_migrating_a_plain_events_table_keeps_rows_positions_and_idempotency(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    store.store_batch([ev("start", "s1", NOW - 2 * DAY_MS, "a", metadata={"k": 1}),
                       ev("custom", "s1", NOW, "b"), ev("end", "s1", NOW + 1, "c", duration=2.0),
                       ev("start", "s2", 7 * DAY_MS, "d")])
    expected = store.get_stats(StatsFilter())
    with store.engine.connect() as conn:
        positions = conn.execute(text("SELECT event_id, seq FROM events ORDER BY seq")).all()
    store.shutdown()
    engine = create_engine(url)
    try:
        migrate.downgrade(engine, "0013")  # back to one plain table keyed by event_id
        with engine.connect() as conn:
            assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'events'")).scalar_one() == "r"
            assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 4
        migrate.upgrade(engine)  # the migration this test is about
        with engine.connect() as conn:
            assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'events'")).scalar_one() == "p"
            assert conn.execute(text("SELECT event_id, seq FROM events ORDER BY seq")).all() == positions
            days = {r[0] for r in conn.execute(text("SELECT tableoid::regclass::text FROM events"))}
        assert days == {partition_name(aligned(NOW - 2 * DAY_MS, DAY_MS)), partition_name(TODAY),
                        partition_name(7 * DAY_MS)}
    finally:
        engine.dispose()
    store = SQLStore(url)
    store.initialize()
    try:
        got = store.get_stats(StatsFilter())
        got.database_size_bytes = expected.database_size_bytes = None
        assert got == expected
        assert store.store_batch([ev("custom", "s1", NOW + 99, "b")]).stored == 0  # still idempotent
        store.store_batch([ev("custom", "s1", NOW + 100, "e")])
        with store.engine.connect() as conn:  # the identity counter carried over: no position reused
            assert conn.execute(text("SELECT seq FROM events WHERE event_id = 'e'")).scalar_one() > positions[-1][1]
    finally:
        store.shutdown()


def test_the_scheduler_job_creates_the_partitions_ahead(url: str) -> None:
    from vibekit_telemetry import Telemetry

    t = Telemetry(storage=[{"type": "postgresql", "options": {"url": url}}])
    try:
        t.track_start("claude", "go")
        t.flush()
        t.runtime.scheduler.run_now("store-upkeep")  # type: ignore[union-attr]  # what the scheduler runs
        store = t.runtime.store  # type: ignore[union-attr]
        assert isinstance(store, SQLStore)
        assert {partition_name(TODAY + i * DAY_MS) for i in range(AHEAD + 1)} <= set(_partitions(store))
    finally:
        t.shutdown()


def test_retention_and_upkeep_run_while_a_writer_writes_without_losing_or_failing(url: str) -> None:
    store, writer = SQLStore(url, prune_days=3), SQLStore(url)
    store.initialize()
    writer.initialize()
    try:
        old_days = [TODAY - d * DAY_MS for d in range(10, 16)]
        store.store_batch([ev("start", f"old-{i}", day + 5, f"old-{i}") for i, day in enumerate(old_days)])
        for day in old_days:
            store.upkeep(now=day)
        stop, errors, written = threading.Event(), [], [0]

        def write() -> None:
            n = 0
            while not stop.is_set():
                try:
                    writer.store_batch([ev("start" if i == 0 else "custom", f"w-{n}", NOW + i, f"w-{n}-{i}")
                                        for i in range(20)])
                    written[0] += 20
                except BaseException as exc:  # a deadlock or lock error would surface here
                    errors.append(exc)
                n += 1

        thread = threading.Thread(target=write)
        thread.start()
        try:
            removed = store.prune()  # drops the six old partitions one transaction each
            for ahead in range(1, 4):
                store.upkeep(now=NOW + ahead * 4 * DAY_MS)  # creates partitions while the writer writes
        finally:
            stop.set()
            thread.join()
        assert errors == [] and removed == 6 and written[0] > 0
        assert not {partition_name(day) for day in old_days} & set(_partitions(store))
        assert store.get_stats(StatsFilter()).total_events == written[0]
    finally:
        writer.shutdown()
        store.shutdown()


def test_two_replicas_running_upkeep_at_once_both_succeed_and_create_each_partition_once(url: str) -> None:
    stores = [SQLStore(url), SQLStore(url)]
    for store in stores:
        store.initialize()
    try:
        later = NOW + 30 * DAY_MS
        stores[0].store_batch([ev("start", "s1", later + 7, "far")])  # in the default partition until then
        barrier = threading.Barrier(2)
        created: list[list[str]] = []
        errors: list[BaseException] = []

        def upkeep(store: SQLStore) -> None:
            barrier.wait()
            try:
                created.append(store.upkeep(now=later))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=upkeep, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(len(c) for c in created) == [0, AHEAD + 1]  # one did it all, the other found it done
        assert _where(stores[1], "far") == partition_name(aligned(later, DAY_MS))
    finally:
        for store in stores:
            store.shutdown()


def test_get_stats_plans_each_statement_over_events_on_one_partition(url: str) -> None:
    # Planning min(timestamp) over every partition cost more than running it (issue 16): the first
    # and last timestamps are read inside one minute each (two scans in one statement), with bounds
    # the planner prunes by; the partial hours of a time range are one partition each.
    import re

    from sqlalchemy import event

    store = SQLStore(url)
    store.initialize()
    try:
        days = range(-6, 1)
        for d in days:
            store.upkeep(now=NOW + d * DAY_MS)
        store.store_batch([ev("start", f"s{d}", NOW + d * DAY_MS - 1000, f"a{d}") for d in days]
                          + [ev("custom", f"s{d}", NOW + d * DAY_MS, f"b{d}") for d in days])
        seen: list[tuple[str, Any]] = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda _c, _cur, stmt, params, _ctx, _many: seen.append((stmt, params)))
        since = NOW - 3 * DAY_MS - 1234
        for f, extent in ((StatsFilter(), (NOW - 6 * DAY_MS - 1000, NOW)),
                          (StatsFilter(since=since, group_by="category"), (NOW - 3 * DAY_MS - 1000, NOW)),
                          (StatsFilter(categories=["claude"], until=NOW - DAY_MS), (NOW - 6 * DAY_MS - 1000,
                                                                                   NOW - DAY_MS))):
            seen.clear()
            stats = store.get_stats(f)
            assert (stats.first_timestamp, stats.last_timestamp) == extent
            over_events = [(s, p) for s, p in seen if re.search(r"\bFROM events\b", s)]
            assert over_events
            with store.engine.connect() as conn:
                for stmt, params in over_events:
                    plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + stmt, params).scalars())
                    assert len(re.findall(r" on events_\w+", plan)) <= 2, (stmt, plan)
    finally:
        store.shutdown()
