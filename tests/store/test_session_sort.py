"""Sessions sorted by start time, duration, event count or error count: one order on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from _store_helpers import ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.query import SESSION_SORT_KEYS, SessionFilter, parse_session_filter
from vibekit_telemetry.store import QueryableStore


def _seed(store: QueryableStore) -> None:
    """Six sessions: durations 300, 100, 100 (a tie), 50, and two still running (no duration)."""
    store.store_batch([
        ev("start", "a", "claude", at=0), ev("start", "b", "claude", at=10), ev("start", "c", "codex", at=20),
        ev("start", "d", "codex", at=30), ev("start", "e", "gemini", at=40), ev("start", "f", "gemini", at=50),
        *(ev("stream", "a", None, at=100 + n, stream_data="x") for n in range(4)),
        *(ev("stream", "e", None, at=100 + n, stream_data="x") for n in range(6)),
        ev("error", "b", None, at=60, label="boom"), ev("error", "b", None, at=61, label="boom"),
        ev("error", "d", None, at=62, label="boom"), ev("error", "f", None, at=63, label="boom"),
        ev("end", "a", None, at=300), ev("end", "b", None, at=110), ev("end", "c", None, at=120),
        ev("end", "d", None, at=80),
    ])


def _ids(store: QueryableStore, **options: Any) -> list[str]:
    return [s.id for s in store.get_sessions(parse_session_filter(**options))]


def test_sorted_by_each_key_both_ways_with_ties_by_start_then_id(store: QueryableStore) -> None:
    _seed(store)
    # Durations a=300, b=100, c=100, d=50; e and f run still: below every duration, ties newest first.
    assert _ids(store, sort="duration") == ["a", "c", "b", "d", "f", "e"]
    assert _ids(store, sort="duration", order="asc") == ["e", "f", "d", "b", "c", "a"]
    # Events: e=7, a=6, b=4, d=3, c=2, f=2.
    assert _ids(store, sort="event_count") == ["e", "a", "b", "d", "f", "c"]
    assert _ids(store, sort="events", order="asc") == ["c", "f", "d", "b", "a", "e"]
    # Errors: b=2, d=1, f=1, the rest 0.
    assert _ids(store, sort="error_count") == ["b", "f", "d", "e", "c", "a"]
    assert _ids(store, sort="start_time") == _ids(store) == ["f", "e", "d", "c", "b", "a"]
    assert _ids(store, sort="start_time", order="asc") == ["a", "b", "c", "d", "e", "f"]


def test_sorting_applies_before_filters_pages_and_limits(store: QueryableStore) -> None:
    _seed(store)
    # Pages of a sorted listing cut the one sorted whole: page 2 continues page 1 exactly.
    first = _ids(store, sort="duration", limit=4)
    second = _ids(store, sort="duration", limit=4, offset=4)
    assert first + second == ["a", "c", "b", "d", "f", "e"]
    assert _ids(store, sort="duration", category="codex") == ["c", "d"]
    assert _ids(store, sort="error_count", with_errors=True, order="asc") == ["d", "f", "b"]
    assert _ids(store, sort="duration", status="active") == ["f", "e"]


@pytest.mark.parametrize("bad", ["size", "", "DURATION", 3])
def test_an_unknown_sort_key_names_the_field_and_the_keys(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_session_filter(sort=bad)
    assert info.value.field == "sort"
    assert all(key in str(info.value) for key in SESSION_SORT_KEYS)


def test_the_sort_key_has_the_seeds_spellings() -> None:
    assert parse_session_filter(sortBy="errors").sort_by == "error_count"
    assert parse_session_filter(sort_by="duration", order="asc") == SessionFilter(sort_by="duration", order="asc")
    assert parse_session_filter().sort_by == "start_time"


@pytest.mark.parametrize(("sort", "index"), [("duration", "ix_sessions_sort_duration"),
                                              ("event_count", "ix_sessions_sort_events"),
                                              ("error_count", "ix_sessions_sort_errors"),
                                              ("start_time", "ix_sessions_sort_start")])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_sorted_page_walks_its_index_instead_of_sorting(backend: str, store: Any, sort: str, index: str,
                                                          order: str) -> None:
    # Over 100,000+ sessions a sort of the whole table costs every page; the index walk costs one page.
    if backend == "memory":
        pytest.skip("the memory store has no indexes")
    from sqlalchemy.dialects import postgresql, sqlite

    from vibekit_telemetry.store.schema import sessions
    from vibekit_telemetry.store.sql.read import session_conditions, session_order

    f = parse_session_filter(sort=sort, order=order, limit=50, offset=100)
    stmt = sessions.select().where(*session_conditions(f)).order_by(*session_order(f, store.sql)).limit(50)
    dialect = sqlite.dialect() if backend == "sqlite" else postgresql.dialect()
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql("SET enable_sort = off")  # a tiny table: ask whether the index CAN serve the order
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
        else:
            plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert index in plan and "Sort" not in plan and "TEMP B-TREE" not in plan, plan
