"""Behaviour every QueryableStore shares, run on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.query import QueryFilter, SessionFilter, StatsFilter, parse_query
from vibekit_telemetry.store import QueryableStore


def _seed(store: QueryableStore) -> None:
    store.store_batch([
        ev("start", "s1", "claude", action="chat", label="refactor the parser",
           metadata={"model": "opus", "n": 2}),
        ev("stream", "s1", None, at=10, stream_data="def tokenize(text):"),
        ev("stream", "s1", None, at=20, stream_data="    return text.split()"),
        ev("end", "s1", None, at=100, metadata={"status": "completed"}),
        ev("start", "s2", "codex", at=1000, action="code", label="write tests", metadata={"model": "gpt"}),
        ev("error", "s2", None, at=1010, label="rate limited", metadata={"retry": True}),
        ev("custom", None, "gemini", at=2000, action="ping", value=3.5),
    ])


def _types(events: list[Any]) -> list[str]:
    return [e.event_type for e in events]


def test_round_trip_returns_each_event_as_stored(store: QueryableStore) -> None:
    _seed(store)
    got = store.query(QueryFilter())
    assert _types(got) == ["start", "stream", "stream", "end", "start", "error", "custom"]
    first = got[0]
    assert (first.category, first.action, first.label, first.metadata) == (
        "claude", "chat", "refactor the parser", {"model": "opus", "n": 2})
    assert got[1].stream_data == "def tokenize(text):"
    assert got[6].value == 3.5 and got[6].session_id is None
    assert len({e.event_id for e in got}) == 7


@pytest.mark.parametrize(("filters", "expected"), [
    ({"since": T0 + 10, "until": T0 + 100}, ["stream", "stream", "end"]),
    ({"session_ids": ["s2"]}, ["start", "error"]),
    ({"event_types": ["start", "custom"]}, ["start", "start", "custom"]),
    ({"categories": ["codex", "gemini"]}, ["start", "error", "custom"]),
    ({"actions": ["chat", "ping"]}, ["start", "custom"]),
    ({"metadata": {"model": "opus"}}, ["start"]),
    ({"metadata": {"n": 2.0}}, ["start"]),
    ({"metadata": {"retry": True}}, ["error"]),
    ({"metadata": {"retry": 1}}, []),
    ({"limit": 2, "offset": 1}, ["stream", "stream"]),
    ({"order": "desc", "limit": 2}, ["custom", "error"]),
    ({"contains": "RATE"}, ["error"]),
])
def test_query_filters(store: QueryableStore, filters: dict[str, Any], expected: list[str]) -> None:
    _seed(store)
    assert _types(store.query(parse_query(filters))) == expected


@pytest.mark.parametrize("needle", ["okeni", "TOKENIZE", "xt.sp", "the pars", "ur"])
def test_contains_finds_substrings_inside_words(store: QueryableStore, needle: str) -> None:
    _seed(store)
    hits = store.query(QueryFilter(contains=needle))
    assert hits, needle
    assert all(needle.lower() in ((e.label or "") + "\n" + (e.stream_data or "")).lower() for e in hits)


def test_contains_treats_like_and_fts_syntax_literally(store: QueryableStore) -> None:
    store.store_batch([ev("start", label='50% done_now "quoted" AND'),
                       ev("stream", at=1, stream_data="500 done")])
    assert _types(store.query(QueryFilter(contains="0% d"))) == ["start"]
    assert _types(store.query(QueryFilter(contains="e_n"))) == ["start"]
    assert _types(store.query(QueryFilter(contains='"quoted" AND'))) == ["start"]
    assert store.query(QueryFilter(contains="nothing like it")) == []


def test_duplicates_are_stored_once_and_change_no_counters(store: QueryableStore) -> None:
    batch = [ev("start", event_id="e1"), ev("stream", at=1, event_id="e2", stream_data="x")]
    first = store.store_batch(batch)
    assert first is not None and (first.stored, first.duplicates) == (2, 0)
    again = store.store_batch([*batch, ev("stream", at=2, event_id="e3"), ev("stream", at=2, event_id="e3")])
    assert again is not None and (again.stored, again.duplicates) == (1, 3)
    assert len(store.query(QueryFilter())) == 3
    session = store.get_session("s1")
    assert session is not None and (session.event_count, session.stream_count) == (3, 2)
    assert store.get_stats(StatsFilter()).total_events == 3


def test_session_counters_status_and_duration(store: QueryableStore) -> None:
    store.store_batch([ev("start", action="chat", label="hi", sandbox_id="sb", metadata={"k": "v"}),
                       ev("stream", at=5), ev("stream", at=6), ev("error", at=7, label="oops")])
    store.store_batch([ev("stream", at=8), ev("end", at=250, metadata={"status": "error"})])
    s = store.get_session("s1", with_events=True)
    assert s is not None
    assert (s.category, s.action, s.label, s.sandbox_id, s.metadata) == (
        "claude", "chat", "hi", "sb", {"k": "v"})
    assert (s.event_count, s.stream_count, s.error_count) == (6, 3, 1)
    assert (s.status, s.start_time, s.end_time, s.duration, s.last_event_time) == (
        "error", T0, T0 + 250, 250.0, T0 + 250)
    assert s.events is not None
    assert _types(s.events) == ["start", "stream", "stream", "error", "stream", "end"]


def test_end_duration_given_wins_and_default_status_is_completed(store: QueryableStore) -> None:
    store.store_batch([ev("start"), ev("end", at=40, duration=12.5)])
    s = store.get_session("s1")
    assert s is not None and (s.status, s.duration) == ("completed", 12.5)


def test_stream_creates_session_implicitly_and_late_start_fills_it(store: QueryableStore) -> None:
    store.store_batch([ev("stream", "s9", "claude", at=10)])
    s = store.get_session("s9")
    assert s is not None and (s.status, s.start_time, s.event_count) == ("active", T0 + 10, 1)
    store.store_batch([ev("start", "s9", "claude", at=0, action="chat", label="late start")])
    s = store.get_session("s9")
    assert s is not None and (s.start_time, s.label, s.event_count) == (T0, "late start", 2)


def test_end_without_start_creates_the_ended_session(store: QueryableStore) -> None:
    store.store_batch([ev("start", "s1")])
    result = store.store_batch([ev("stream", "s1", at=1), ev("end", "ghost", None, at=2,
                                                             metadata={"status": "failed"})])
    assert result is not None and (result.stored, result.rejected) == (2, [])
    ghost = store.get_session("ghost")
    assert ghost is not None
    assert (ghost.category, ghost.status, ghost.start_time, ghost.end_time, ghost.event_count) == (
        "unknown", "error", T0 + 2, T0 + 2, 1)  # "failed" is an alias of error
    assert store.existing_sessions(["s1", "ghost"]) == {"s1", "ghost"}
    assert _types(store.query(QueryFilter())) == ["start", "stream", "end"]


def test_stream_before_start_in_one_batch_is_stored_and_the_start_fills_the_session(store: QueryableStore) -> None:
    result = store.store_batch([ev("stream", "lost", None, at=5, stream_data="first"),
                                ev("start", "lost", "claude", at=0, action="code", label="late", sandbox_id="sb",
                                   repo_url="https://example.test/r", metadata={"k": 1})])
    assert result is not None and (result.stored, result.rejected) == (2, [])
    s = store.get_session("lost")
    assert s is not None
    assert (s.category, s.action, s.label, s.status, s.start_time, s.event_count, s.stream_count) == (
        "claude", "code", "late", "active", T0, 2, 1)
    assert (s.sandbox_id, s.repo_url, s.metadata) == ("sb", "https://example.test/r", {"k": 1})


def test_start_arriving_in_a_later_batch_fills_in_a_session_created_without_one(store: QueryableStore) -> None:
    store.store_batch([ev("stream", "lost", None, at=10), ev("error", "lost", None, at=20, label="boom")])
    s = store.get_session("lost")
    assert s is not None and (s.category, s.action, s.status, s.start_time, s.event_count, s.error_count) == (
        "unknown", None, "active", T0 + 10, 2, 1)
    assert store.get_stats(StatsFilter()).agents == {"unknown": 2}
    store.store_batch([ev("start", "lost", "codex", at=0, action="chat", label="the prompt")])
    s = store.get_session("lost")
    assert s is not None and (s.category, s.action, s.label, s.start_time, s.event_count) == (
        "codex", "chat", "the prompt", T0, 3)
    stats = store.get_stats(StatsFilter())
    assert (stats.total_sessions, stats.active_sessions) == (1, 1)
    assert [g.key for g in store.get_stats(StatsFilter(group_by="category")).groups if g.sessions] == ["codex"]
    store.store_batch([ev("end", "lost", None, at=100)])
    s = store.get_session("lost")
    assert s is not None and (s.status, s.duration, s.category) == ("completed", 100.0, "codex")


def test_end_for_session_started_earlier_in_the_same_batch_is_accepted(store: QueryableStore) -> None:
    result = store.store_batch([ev("start", "a"), ev("end", "a", None, at=3)])
    assert result is not None and (result.stored, result.rejected) == (2, [])


def test_category_is_inherited_from_the_session_or_unknown(store: QueryableStore) -> None:
    store.store_batch([ev("start", "s1", "codex")])
    result = store.store_batch([ev("stream", "s1", None, at=1), ev("stream", "new", None, at=2),
                                ev("custom", None, None, at=3)])
    assert result is not None and result.stored == 2
    assert [reason for _, reason in result.rejected] == [
        "category: expected a category for an event outside any session"]
    assert [e.category for e in store.query(QueryFilter())] == ["codex", "codex", "unknown"]
    new = store.get_session("new")
    assert new is not None and (new.category, new.status) == ("unknown", "active")


def test_sessions_listing_filters(store: QueryableStore) -> None:
    _seed(store)
    store.store_batch([ev("start", "s3", "claude", at=3000)])
    assert [s.id for s in store.get_sessions(SessionFilter())] == ["s3", "s2", "s1"]
    assert [s.id for s in store.get_sessions(SessionFilter(order="asc", limit=2))] == ["s1", "s2"]
    assert [s.id for s in store.get_sessions(SessionFilter(statuses=["active"]))] == ["s3", "s2"]
    assert [s.id for s in store.get_sessions(SessionFilter(categories=["claude"]))] == ["s3", "s1"]
    assert [s.id for s in store.get_sessions(SessionFilter(with_errors=True))] == ["s2"]
    assert [s.id for s in store.get_sessions(SessionFilter(since=T0 + 500, until=T0 + 2500))] == ["s2"]


@pytest.mark.parametrize("time_filtered", [False, True])
def test_stats_totals_agents_and_duration(store: QueryableStore, time_filtered: bool) -> None:
    _seed(store)
    f = StatsFilter(since=T0, until=T0 + 10_000) if time_filtered else StatsFilter()
    stats = store.get_stats(f)
    totals = (stats.total_events, stats.total_sessions, stats.active_sessions, stats.error_events)
    assert totals == (7, 2, 1, 1)
    assert stats.agents == {"claude": 4, "codex": 2, "gemini": 1}
    assert (stats.first_timestamp, stats.last_timestamp) == (T0, T0 + 2000)
    assert stats.avg_session_duration_ms == 100.0


def test_stats_breakdowns(store: QueryableStore) -> None:
    _seed(store)
    by_cat = store.get_stats(StatsFilter(group_by="category")).groups
    assert [(g.key, g.events, g.sessions, g.errors) for g in by_cat] == [
        ("claude", 4, 1, 0), ("codex", 2, 1, 1), ("gemini", 1, 0, 0)]
    types = store.get_stats(StatsFilter(group_by="event_type")).groups
    by_type = {g.key: (g.events, g.sessions) for g in types}
    assert by_type == {"start": (2, 2), "stream": (2, 1), "end": (1, 1), "error": (1, 1), "custom": (1, 0)}
    by_action = {g.key: g.events for g in store.get_stats(StatsFilter(group_by="action")).groups}
    assert by_action == {None: 4, "chat": 1, "code": 1, "ping": 1}
    only = store.get_stats(StatsFilter(categories=["codex"]))
    assert (only.total_events, only.total_sessions, only.agents) == (2, 1, {"codex": 2})


def test_clean_by_age_removes_empty_sessions_only(store: QueryableStore) -> None:
    _seed(store)
    removed = store.clean(older_than_ms=T0 + 15)
    assert removed == 2  # s1's start and first stream
    assert store.get_session("s1") is not None  # still has events
    assert store.clean(older_than_ms=T0 + 1005) == 3
    assert store.get_session("s1") is None
    assert store.get_stats(StatsFilter()).total_events == 2


def test_clean_by_session_and_category(store: QueryableStore) -> None:
    _seed(store)
    assert store.clean(session_ids=["s1"]) == 4
    assert store.get_session("s1") is None and store.get_session("s2") is not None
    assert store.clean(categories=["gemini"]) == 1
    stats = store.get_stats(StatsFilter())
    assert (stats.total_events, stats.agents) == (2, {"codex": 2})
    assert store.clean(session_ids=["s2"], categories=["claude"]) == 0


def test_clean_older_than_small_value_is_an_age(store: QueryableStore) -> None:
    _seed(store)  # events from 2023
    assert store.clean(older_than_ms=86_400_000) == 7
    assert store.get_sessions(SessionFilter()) == []


def test_health_and_shutdown_twice(store: QueryableStore) -> None:
    _seed(store)
    health = store.health()
    assert health["reachable"] is True and health["events"] == 7 and health["sessions"] == 2
    store.flush()
    store.shutdown()
    store.shutdown()
