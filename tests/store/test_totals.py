"""Stats from maintained totals and rollups stay equal to a recount, through every kind of change."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.query import StatsFilter
from vibekit_telemetry.store import MemoryStore, QueryableStore
from vibekit_telemetry.store._sql_read import time_pieces

DAY, HOUR = 86_400_000, 3_600_000
WIDE = StatsFilter(since=T0 - 10 * DAY, until=T0 + 10 * DAY)  # a time range: rollups + sessions table


def _view(store: QueryableStore, f: StatsFilter) -> dict[str, Any]:
    out = store.get_stats(f).to_dict()
    out.pop("database_size_bytes")
    return out


def _both(store: QueryableStore, ref: MemoryStore, batch: list[TelemetryEvent]) -> None:
    # Each store gets its own copies: stores fill in ids and categories on the objects they are given.
    store.store_batch([_copy(e) for e in batch])
    ref.store_batch([_copy(e) for e in batch])


def _copy(e: TelemetryEvent) -> TelemetryEvent:
    from dataclasses import replace

    return replace(e)


def _assert_same(store: QueryableStore, ref: MemoryStore) -> None:
    for by in (None, "category", "event_type", "action"):
        for f in (StatsFilter(group_by=by), StatsFilter(group_by=by, categories=["claude"])):
            assert _view(store, f) == _view(ref, f), (by, f.categories)
    # Unfiltered stats come from session_totals; a wide time range recounts from rollups and sessions.
    plain, wide = _view(store, StatsFilter()), _view(store, WIDE)
    assert plain == wide


def test_totals_follow_duplicates_rejections_late_starts_and_second_ends(store: QueryableStore) -> None:
    ref = MemoryStore()
    _both(store, ref, [ev("start", "a", event_id="a0"), ev("stream", "a", at=1, event_id="a1"),
                       ev("stream", "b", "codex", at=2, event_id="b1")])  # b: created implicitly as codex
    _assert_same(store, ref)
    _both(store, ref, [ev("stream", "a", at=1, event_id="a1"),  # a replayed duplicate
                       ev("end", "nope", at=3),  # rejected: unknown session
                       ev("stream", "x", None, at=4),  # rejected: no category, unknown session
                       ev("error", "a", at=5, label="boom"),
                       ev("start", "b", "gemini", at=1, action="code")])  # late start renames b to gemini
    _assert_same(store, ref)
    assert store.get_stats(StatsFilter()).agents == {"claude": 3, "codex": 1, "gemini": 1}
    _both(store, ref, [ev("end", "a", at=50, metadata={"status": "error"}), ev("end", "b", at=40, duration=7.5)])
    _assert_same(store, ref)
    _both(store, ref, [ev("end", "a", at=80)])  # a second end: status and duration replaced
    _assert_same(store, ref)
    stats = store.get_stats(StatsFilter())
    assert (stats.total_sessions, stats.active_sessions, stats.error_events) == (2, 0, 1)
    assert stats.avg_session_duration_ms == (80.0 + 7.5) / 2


def test_totals_are_corrected_by_clean(store: QueryableStore) -> None:
    ref = MemoryStore()
    rng = random.Random(5)
    batch = []
    for s in range(30):
        cat = ("claude", "codex", "gemini")[s % 3]
        at = s * 7 * HOUR
        batch.append(ev("start", f"s{s}", cat, at=at, action="chat" if s % 2 else None))
        batch += [ev("stream", f"s{s}", cat, at=at + i * 60_000 + rng.randint(0, 999)) for i in range(1, 6)]
        if s % 4 == 0:
            batch.append(ev("error", f"s{s}", cat, at=at + 400_000))
        if s % 3 != 2:
            batch.append(ev("end", f"s{s}", cat, at=at + 500_000))
    _both(store, ref, batch)
    _assert_same(store, ref)
    for kwargs in ({"older_than_ms": T0 + 3 * DAY + 5 * 60_000}, {"categories": ["codex"]},
                   {"session_ids": ["s20", "s22", "s24"]}, {"session_ids": ["s29"], "categories": ["gemini"]}):
        assert store.clean(**kwargs) == ref.clean(**kwargs) > 0, kwargs
        _assert_same(store, ref)
    assert store.clean() == ref.clean()
    assert _view(store, StatsFilter(group_by="category")) == _view(ref, StatsFilter(group_by="category"))
    assert store.get_stats(StatsFilter()).total_sessions == 0


def test_time_ranges_combine_day_and_hour_rollups_with_raw_edges(store: QueryableStore) -> None:
    ref = MemoryStore()
    rng = random.Random(11)
    batch = []
    for s in range(40):
        at = rng.randint(0, 4 * DAY)
        batch.append(ev("start", f"s{s}", ("claude", "codex")[s % 2], at=at, action=("a", "b", None)[s % 3]))
        batch += [ev(("stream", "error")[i % 4 == 3], f"s{s}", None, at=at + rng.randint(1, 5 * HOUR))
                  for i in range(8)]
    _both(store, ref, batch)
    for _ in range(25):
        lo = T0 + rng.randint(-DAY, 4 * DAY)
        hi = lo + rng.choice([0, 1, 59_999, HOUR, 3 * HOUR + 17, DAY - 1, DAY, 2 * DAY + 5, 6 * DAY])
        for f in (StatsFilter(since=lo, until=hi, group_by="action"), StatsFilter(since=lo),
                  StatsFilter(until=hi, group_by="event_type", categories=["codex"])):
            assert _view(store, f) == _view(ref, f), (f.since, f.until)


@pytest.mark.parametrize(("since", "until"), [
    (None, None), (5, None), (None, 5), (DAY - 1, DAY + 1), (DAY, 2 * DAY - 1), (HOUR + 1, 3 * HOUR),
    (1, 3 * DAY + 2 * HOUR + 7), (0, 0), (-HOUR - 5, 2 * DAY)])
def test_time_pieces_cover_the_range_exactly_once(since: int | None, until: int | None) -> None:
    covered: list[tuple[int, int]] = []
    for source, lo, hi in time_pieces(since, until):
        lo_ = -10 * DAY if lo is None else lo
        hi_ = 10 * DAY if hi is None else hi
        size = {"day": DAY, "hour": HOUR, "raw": 1}[source]
        assert (lo_ % size == 0 and hi_ % size == 0) or source == "raw" or lo is None or hi is None
        covered.append((lo_, hi_))
    covered.sort()
    start = -10 * DAY if since is None else since
    end = 10 * DAY if until is None else until + 1
    assert covered[0][0] == start and covered[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    assert sum(1 for s, *_ in time_pieces(since, until) if s == "raw") <= 2
