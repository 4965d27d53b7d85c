"""get_stats() first and last timestamps: exact for every range, agent filter and edit (all backends).

The SQL stores find them through the minute rollups (store/sql/read_extent.py); these cases cut
ranges inside a minute, leave minutes without a matching event and remove events, so an answer
taken from a rollup bucket instead of the events themselves would show.
"""

from __future__ import annotations

import pytest
from _store_helpers import T0, ev
from sqlalchemy import text

from vibekit_telemetry.query import QueryFilter, StatsFilter
from vibekit_telemetry.store import QueryableStore

HOUR = 3_600_000
# T0 is 20 s into its minute: "claude" runs from it into the next minute, "codex" starts in the same
# minute and streams two hours later.
CASES = [
    StatsFilter(),
    StatsFilter(categories=["codex"]),
    StatsFilter(since=T0 + 10_000),  # inside the first minute: its first event is left out
    StatsFilter(until=T0 + 2 * HOUR + 1_000),  # inside the last minute: its last event is left out
    StatsFilter(since=T0 + 16_000, until=T0 + 40_000, categories=["codex"]),
    StatsFilter(since=T0 + 46_000, until=T0 + HOUR),  # minutes with events, none in range
    StatsFilter(since=T0 + 3 * HOUR),
    StatsFilter(categories=["nobody"]),
]


def _seed(store: QueryableStore) -> None:
    store.store_batch([
        ev("start", "a", "claude", at=0), ev("stream", "a", None, at=15_000), ev("end", "a", None, at=45_000),
        ev("start", "b", "codex", at=30_000), ev("stream", "b", None, at=2 * HOUR),
        ev("end", "b", None, at=2 * HOUR + 5_000),
    ])


def _recount(store: QueryableStore, f: StatsFilter) -> tuple[int | None, int | None]:
    times = [e.timestamp for e in store.query(QueryFilter(since=f.since, until=f.until, categories=f.categories))]
    return (min(times), max(times)) if times else (None, None)


def _extent(store: QueryableStore, f: StatsFilter) -> tuple[int | None, int | None]:
    stats = store.get_stats(f)
    return stats.first_timestamp, stats.last_timestamp


@pytest.mark.parametrize("f", CASES, ids=range(len(CASES)))
def test_first_and_last_are_those_of_the_matching_events(store: QueryableStore, f: StatsFilter) -> None:
    _seed(store)
    assert _extent(store, f) == _recount(store, f)


def test_removing_the_first_and_last_events_moves_first_and_last(store: QueryableStore) -> None:
    _seed(store)
    assert _extent(store, StatsFilter()) == (T0, T0 + 2 * HOUR + 5_000)
    store.clean(older_than_ms=T0 + 1)  # the first event only: its minute keeps two others
    assert _extent(store, StatsFilter()) == (T0 + 15_000, T0 + 2 * HOUR + 5_000)
    store.clean(session_ids=["b"])
    assert _extent(store, StatsFilter()) == (T0 + 15_000, T0 + 45_000)
    assert _extent(store, StatsFilter(categories=["codex"])) == (None, None)
    store.clean()
    assert _extent(store, StatsFilter()) == (None, None)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_events_gone_behind_the_rollups_back_still_give_exact_bounds(store: QueryableStore) -> None:
    # Rows deleted by hand leave the rollups naming minutes that hold none of them any more: the
    # store then reads the events themselves rather than answer with a stale minute.
    _seed(store)
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        # Every event of the first minute and of the last one: only the end of "a" is left.
        conn.execute(text("DELETE FROM events WHERE timestamp < :a OR timestamp >= :b"),
                     {"a": T0 + 40_000, "b": T0 + 2 * HOUR})
    assert _extent(store, StatsFilter()) == (T0 + 45_000, T0 + 45_000)
    assert _extent(store, StatsFilter(categories=["codex"])) == (None, None)
