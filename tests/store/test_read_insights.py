"""error_groups and longest_sessions: the same answers on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.query import QueryFilter, SessionFilter
from vibekit_telemetry.store.base import ReadInsights


def _seed(store: ReadInsights) -> None:
    store.store_batch([  # type: ignore[attr-defined]
        ev("start", "a", "claude", at=0), ev("start", "b", "claude", at=1), ev("start", "c", "codex", at=2),
        ev("start", "d", "codex", at=3),
        ev("error", "b", None, at=10, label="rate limited"),
        ev("error", "a", None, at=20, label="rate limited"),
        ev("error", "a", None, at=25, label="rate limited"),
        ev("error", "c", None, at=30, label="timeout"),
        ev("error", "d", None, at=40, label="rate limited"),
        ev("error", "c", None, at=50, label=None),
        ev("error", None, "gemini", at=60, label="timeout"),
        ev("stream", "a", None, at=70, label="rate limited"),  # not an error: never counted
        ev("end", "a", None, at=100), ev("end", "b", None, at=500), ev("end", "c", None, at=300),
    ])


def test_error_groups_by_message_with_counts_times_and_sample_sessions(store: ReadInsights) -> None:
    _seed(store)
    groups = store.error_groups(QueryFilter())
    assert [(g.key, g.count, g.sessions, g.first_seen - T0, g.last_seen - T0) for g in groups] == [
        ("rate limited", 4, 3, 10, 40), ("timeout", 2, 1, 30, 60), (None, 1, 1, 50, 50)]
    # Sample sessions in the order they first failed, at most three.
    assert [g.sample_session_ids for g in groups] == [["b", "a", "d"], ["c"], ["c"]]


def test_error_groups_follow_the_filter_field_and_limit(store: ReadInsights) -> None:
    _seed(store)
    by_agent = store.error_groups(QueryFilter(since=T0 + 20), by="category")
    assert [(g.key, g.count, g.sessions) for g in by_agent] == [("codex", 3, 2), ("claude", 2, 1), ("gemini", 1, 0)]
    assert [(g.key, g.count) for g in store.error_groups(QueryFilter(), by="session_id", limit=2)] == [
        ("a", 2), ("c", 2)]
    assert store.error_groups(QueryFilter(categories=["nobody"])) == []
    with pytest.raises(ValidationError, match="by"):
        store.error_groups(QueryFilter(), by="stream_data")


def test_longest_sessions_are_finished_ones_longest_first(store: ReadInsights) -> None:
    _seed(store)
    longest = store.longest_sessions(SessionFilter())
    assert [(s.id, s.duration) for s in longest] == [("b", 499.0), ("c", 298.0), ("a", 100.0)]
    assert [s.id for s in store.longest_sessions(SessionFilter(), limit=1)] == ["b"]
    assert [s.id for s in store.longest_sessions(SessionFilter(categories=["codex"]))] == ["c"]
    assert store.longest_sessions(SessionFilter(statuses=["active"])) == []
