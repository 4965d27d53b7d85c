"""Cursor (keyset) pages of sessions and events: one contract on memory, SQLite and PostgreSQL.

A cursor is where the previous page ended; the next page starts right after it, whatever was stored
meanwhile, and each page is a range seek of the sort index instead of OFFSET's re-read of every row
it skips.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from _store_helpers import ev
from test_session_sort import _seed

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.query import (
    SESSION_SORT_KEYS,
    event_cursor,
    parse_query,
    parse_session_filter,
    session_cursor,
)
from vibekit_telemetry.store import QueryableStore


def _pages(read: Callable[[Any], list[Any]], parse: Callable[..., Any], cursor_of: Callable[[Any, Any], str],
           key: Callable[[Any], Any], size: int, options: dict[str, Any]) -> list[list[Any]]:
    """Every page of a listing, each asked with the cursor of the one before."""
    pages: list[list[Any]] = []
    cursor = None
    while True:
        f = parse(limit=size, cursor=cursor, **options)
        page = read(f)
        if page:
            pages.append([key(row) for row in page])
        if len(page) < size:
            return pages
        cursor = cursor_of(page[-1], f)


def _session_pages(store: QueryableStore, size: int, **options: Any) -> list[list[str]]:
    return _pages(store.get_sessions, parse_session_filter, session_cursor, lambda s: s.id, size, options)


def _event_pages(store: QueryableStore, size: int, **options: Any) -> list[list[str | None]]:
    return _pages(store.query, parse_query, event_cursor, lambda e: e.label, size, options)


@pytest.mark.parametrize("sort", SESSION_SORT_KEYS)
@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("size", [1, 2, 4])
def test_cursor_pages_cut_the_sorted_listing_exactly(store: QueryableStore, sort: str, order: str,
                                                     size: int) -> None:
    # Ties on every key and two running sessions (no duration): the order of test_session_sort.py.
    _seed(store)
    whole = [s.id for s in store.get_sessions(parse_session_filter(sort=sort, order=order))]
    pages = _session_pages(store, size, sort=sort, order=order)
    assert [sid for page in pages for sid in page] == whole
    assert all(len(page) == size for page in pages[:-1])


def test_cursor_pages_keep_the_filters(store: QueryableStore) -> None:
    _seed(store)
    assert _session_pages(store, 1, sort="duration", category="codex") == [["c"], ["d"]]
    assert _session_pages(store, 2, sort="error_count", with_errors=True, order="asc") == [["d", "f"], ["b"]]


def test_a_session_started_meanwhile_does_not_shift_the_next_page(store: QueryableStore) -> None:
    _seed(store)
    f = parse_session_filter(limit=2)  # newest first: f, e
    first = store.get_sessions(f)
    store.store_batch([ev("start", "g", "claude", at=1000)])  # newer than every listed one
    after = store.get_sessions(parse_session_filter(limit=2, cursor=session_cursor(first[-1], f)))
    assert [s.id for s in first] == ["f", "e"] and [s.id for s in after] == ["d", "c"]
    shifted = store.get_sessions(parse_session_filter(limit=2, offset=2))
    assert [s.id for s in shifted] == ["e", "d"]  # what OFFSET answers instead: e twice


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_event_cursor_pages_cut_the_query_exactly(store: QueryableStore, order: str) -> None:
    # Three events share each timestamp: the event id breaks the ties, as in the whole listing.
    store.store_batch([ev("stream", "s1", at=n // 3, label=f"e{n}", event_id=f"id-{n:03d}") for n in range(10)])
    store.store_batch([ev("start", "s2", "codex", at=2, label="other")])
    whole = [e.label for e in store.query(parse_query(order=order, session_id="s1"))]
    for size in (1, 3, 4):
        pages = _event_pages(store, size, order=order, session_id="s1")
        assert [label for page in pages for label in page] == whole
        assert all(len(page) == size for page in pages[:-1])


def _forge(**data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "not a cursor", "", "%%%", _forge(l="events", s="timestamp", o="desc", p=[1, "a"]),
    _forge(l="sessions", s="start_time", o="desc", p=[1]), _forge(l="sessions", s="start_time", o="desc", p=["1", "a"]),
    _forge(l="sessions", s="start_time", o="desc", p=[2**70, "a"]), _forge(l="sessions", s="start_time", o="desc",
                                                                           p=[True, "a"]),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(), 42])
def test_a_bad_session_cursor_names_the_field(cursor: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_session_filter(cursor=cursor)
    assert info.value.field == "cursor"


def test_a_cursor_of_another_sort_or_order_says_which(store: QueryableStore) -> None:
    _seed(store)
    f = parse_session_filter(sort="duration", limit=2)
    cursor = session_cursor(store.get_sessions(f)[-1], f)
    others: list[dict[str, Any]] = [{"sort": "event_count"}, {"sort": "duration", "order": "asc"}]
    for other in others:
        with pytest.raises(ValidationError) as info:
            parse_session_filter(cursor=cursor, **other)
        assert info.value.field == "cursor" and "sort='duration' order='desc'" in str(info.value)
    with pytest.raises(ValidationError) as info:
        parse_session_filter(sort="duration", cursor=cursor, offset=2)
    assert info.value.field == "cursor"
    with pytest.raises(ValidationError) as info:
        parse_query(cursor=cursor)  # a sessions cursor given to an events query
    assert info.value.field == "cursor"


@pytest.mark.parametrize(("sort", "index"), [("duration", "ix_sessions_sort_duration"),
                                              ("event_count", "ix_sessions_sort_events"),
                                              ("start_time", "ix_sessions_sort_start")])
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_cursor_page_seeks_the_sort_index(backend: str, store: Any, sort: str, index: str, order: str) -> None:
    if backend == "memory":
        pytest.skip("the memory store has no indexes")
    from _store_helpers import session_plans

    _seed(store)
    f = parse_session_filter(sort=sort, order=order, limit=2)
    cursor = session_cursor(store.get_sessions(f)[-1], f)
    plans = session_plans(store, lambda: store.get_sessions(parse_session_filter(
        sort=sort, order=order, limit=2, cursor=cursor)))
    for plan in plans:
        assert index in plan and "TEMP B-TREE" not in plan and "Sort" not in plan, plan
        # A seek (a bound on the index's columns), not a walk from the index's first entry.
        assert ("SEARCH" in plan) if backend == "sqlite" else ("Index Cond" in plan), plan
