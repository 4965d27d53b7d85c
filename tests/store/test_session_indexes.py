"""Start-time filters and sorts of sessions stay index seeks after migration 0015 dropped ix_sessions_start_time.

The statements are the store's own, captured as it runs them (listings, stats over a time range,
breakdowns), then EXPLAINed on SQLite and PostgreSQL. PostgreSQL plans a tiny table as a sequential
scan whatever the indexes, so there sequential scans and sorts are turned off: the question is whether
an index CAN serve the statement, as it must over 100,000+ sessions.
"""

from __future__ import annotations

from typing import Any

import pytest
from _store_helpers import T0, ev, session_plans
from sqlalchemy import inspect

from vibekit_telemetry.query import parse_session_filter, parse_stats_filter

HOUR = 3_600_000


@pytest.fixture
def sql_store(backend: str, store: Any) -> Any:
    """The SQL stores only: the memory store has no indexes."""
    if backend == "memory":
        pytest.skip("the memory store has no indexes")
    store.store_batch([ev("start", f"s{n}", ("claude", "codex")[n % 2], at=n * 60_000) for n in range(40)])
    return store


def _seeks_start_time(plan: str, dialect: str) -> bool:
    """Whether the plan reaches sessions through ix_sessions_sort_start on its start_time column."""
    if dialect == "postgresql":
        return "ix_sessions_sort_start" in plan and "start_time" in plan and "Seq Scan" not in plan
    return "USING INDEX ix_sessions_sort_start (start_time>" in plan or \
        "USING INDEX ix_sessions_sort_start (start_time<" in plan


def test_migration_0015_leaves_no_single_column_start_time_index(sql_store: Any) -> None:
    with sql_store.engine.connect() as conn:
        names = {ix["name"] for ix in inspect(conn).get_indexes("sessions")}
    assert "ix_sessions_start_time" not in names
    assert "ix_sessions_sort_start" in names


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_a_listing_since_a_time_seeks_and_walks_the_start_index(sql_store: Any, order: str) -> None:
    f = parse_session_filter(since=T0 + 10 * 60_000, until=T0 + 30 * 60_000, order=order, limit=5)
    listed: list[Any] = []
    (plan,) = session_plans(sql_store, lambda: listed.extend(sql_store.get_sessions(f)))
    assert [s.id for s in listed] == ([f"s{n}" for n in range(30, 25, -1)] if order == "desc"
                                      else [f"s{n}" for n in range(10, 15)])
    assert _seeks_start_time(plan, sql_store.dialect), plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_with_statistics_a_listing_of_one_agent_since_a_time_needs_no_sort(sql_store: Any) -> None:
    # Without statistics SQLite takes ix_sessions_category and sorts every session of the agent: the
    # store's upkeep gathers them (test_statistics.py), after which the start index serves both.
    sql_store.refresh_statistics()
    f = parse_session_filter(since=T0 + 10 * 60_000, category="codex", limit=3)
    (plan,) = session_plans(sql_store, lambda: sql_store.get_sessions(f))
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan


def test_stats_over_a_time_range_read_the_partial_hours_by_the_start_index(sql_store: Any) -> None:
    # 00:10 to 00:30 is inside one hour: counted from the sessions table itself, by a start-time range.
    f = parse_stats_filter(since=T0 + 10 * 60_000, until=T0 + 30 * 60_000)
    stats: list[Any] = []
    plans = session_plans(sql_store, lambda: stats.append(sql_store.get_stats(f)))
    assert stats[0].total_sessions == 21
    assert plans and all(_seeks_start_time(p, sql_store.dialect) for p in plans), plans


def test_a_session_breakdown_reads_the_partial_hours_by_the_start_index(sql_store: Any) -> None:
    groups: list[Any] = []
    plans = session_plans(sql_store, lambda: groups.extend(
        sql_store.session_breakdown(["category"], since=T0 + 10 * 60_000, until=T0 + 30 * 60_000)))
    assert sorted((g.key[0], g.sessions) for g in groups) == [("claude", 11), ("codex", 10)]
    raw = [p for p in plans if "session_rollups" not in p]
    assert raw and all(_seeks_start_time(p, sql_store.dialect) for p in raw), plans
