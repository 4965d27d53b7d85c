"""Stats from maintained totals and rollups stay equal to a recount, through every kind of change."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.query import SessionFilter, StatsFilter
from vibekit_telemetry.store import MemoryStore, QueryableStore
from vibekit_telemetry.store.sql.read_stats import time_pieces

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
                       ev("end", "nope", at=3),  # its start was lost: created ended
                       ev("stream", "x", None, at=4),  # created as unknown
                       ev("custom", None, None, at=4),  # rejected: no category, no session
                       ev("error", "a", at=5, label="boom"),
                       ev("start", "b", "gemini", at=1, action="code")])  # late start renames b to gemini
    _assert_same(store, ref)
    # "nope"'s end is a claude event (the helper's default category); "x" is unknown.
    assert store.get_stats(StatsFilter()).agents == {"claude": 4, "codex": 1, "gemini": 1, "unknown": 1}
    _both(store, ref, [ev("end", "a", at=50, metadata={"status": "error"}), ev("end", "b", at=40, duration=7.5)])
    _assert_same(store, ref)
    _both(store, ref, [ev("end", "a", at=80)])  # a second end: status and duration replaced
    _assert_same(store, ref)
    stats = store.get_stats(StatsFilter())
    assert (stats.total_sessions, stats.active_sessions, stats.error_events) == (4, 1, 1)  # x still active
    assert stats.avg_session_duration_ms == (80.0 + 7.5 + 0.0) / 3  # nope: ended at its only event


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


def _recount(store: QueryableStore, f: StatsFilter) -> dict[str, Any]:
    """Brute force: the session part of windowed stats, recounted from every session in the range."""
    found = store.get_sessions(SessionFilter(since=f.since, until=f.until, categories=f.categories))
    durations = [s.duration for s in found if s.end_time is not None and s.duration is not None]
    per: dict[str | None, int] = {}
    for s in found:
        per[s.category] = per.get(s.category, 0) + 1
    return {"total": len(found), "active": sum(s.status == "active" for s in found),
            "avg": sum(durations) / len(durations) if durations else None, "per": per}


def _windowed(store: QueryableStore, f: StatsFilter) -> dict[str, Any]:
    stats = store.get_stats(f)
    return {"total": stats.total_sessions, "active": stats.active_sessions, "avg": stats.avg_session_duration_ms,
            "per": {g.key: g.sessions for g in stats.groups}}


def _windows(rng: random.Random) -> list[StatsFilter]:
    out = [StatsFilter(since=T0 - DAY, group_by="category"), StatsFilter(until=T0 + DAY, group_by="category")]
    for _ in range(30):
        lo = T0 + rng.randint(-2 * HOUR, 3 * DAY) // rng.choice([1, 60_000, HOUR]) * rng.choice([1, 60_000, HOUR])
        hi = lo + rng.choice([0, 1, 59_999, HOUR - 1, HOUR, 5 * HOUR + 3, DAY - 1, DAY, 2 * DAY + 7, 5 * DAY])
        cats = rng.choice([(), ("claude",), ("codex", "gemini")])
        out.append(StatsFilter(since=lo, until=hi, categories=list(cats), group_by="category"))
    return out


def _assert_windows(store: QueryableStore, ref: MemoryStore, rng: random.Random) -> None:
    for f in _windows(rng):
        got, want = _windowed(store, f), _recount(store, f)
        # Groups are the agents with events in the range, each with its sessions started in the range.
        want["per"] = {k: want["per"].get(k, 0) for k in got["per"]}
        assert got == want == _windowed(ref, f), (f.since, f.until, f.categories)
        assert _view(store, f) == _view(ref, f)


def test_windowed_session_counts_follow_late_starts_second_ends_duplicates_and_clean(
        store: QueryableStore) -> None:
    """Sessions counted by start time from session_rollups (whole hours / days) equal a recount."""
    ref = MemoryStore()
    rng = random.Random(23)
    first = []
    for s in range(60):
        at = rng.randint(0, 3 * DAY)
        cat = ("claude", "codex", "gemini")[s % 3]
        # Every third session is created implicitly by a stream and started later (below).
        first.append(ev("stream" if s % 3 == 0 else "start", f"s{s}", cat, at=at, event_id=f"s{s}-0"))
        first += [ev("stream", f"s{s}", cat, at=at + rng.randint(1, 2 * HOUR)) for _ in range(3)]
        if s % 4 == 1:
            first.append(ev("end", f"s{s}", cat, at=at + rng.randint(1, 3 * HOUR), duration=float(s)))
    _both(store, ref, first)
    _assert_windows(store, ref, rng)
    second = [first[0], first[5]]  # replayed duplicates
    for s in range(0, 60, 3):
        # Late starts: earlier than the first event (across hour and day edges), renaming the agent.
        back = rng.choice([1, 30 * 60_000, HOUR + 1, DAY])
        start_at = next(e.timestamp for e in first if e.event_id == f"s{s}-0") - T0 - back
        second.append(ev("start", f"s{s}", ("gemini", "claude")[s % 2], at=start_at))
    for s in range(1, 60, 4):
        # Second ends: status and duration replaced (duration from start when not given).
        second.append(ev("end", f"s{s}", None, at=4 * DAY + s, metadata={"status": "error"},
                         duration=None if s % 8 == 1 else 2.5 * s))
    for s in range(2, 60, 6):
        second.append(ev("end", f"s{s}", None, at=4 * DAY + s))
    second.append(ev("start", "s3", "codex", at=5 * DAY))  # a later start leaves start_time alone
    _both(store, ref, second)
    _assert_windows(store, ref, rng)
    for kwargs in ({"older_than_ms": T0 + DAY + 17 * 60_000}, {"categories": ["codex"]},
                   {"session_ids": ["s4", "s10", "s11"]}, {"older_than_ms": T0 + 2 * DAY + 5 * HOUR}):
        assert store.clean(**kwargs) == ref.clean(**kwargs), kwargs
        _assert_windows(store, ref, rng)
    assert store.clean() == ref.clean()
    assert _windowed(store, StatsFilter(since=T0 - DAY, group_by="category"))["total"] == 0


def test_session_rollups_equal_a_recount_from_sessions(store: QueryableStore) -> None:
    """The SQL stores' buckets themselves: every (period, bucket, category) row equals a recount."""
    if not hasattr(store, "engine"):
        pytest.skip("session_rollups is an SQL table")
    _both(store, MemoryStore(), [
        ev("stream", "a", at=DAY + 5 * 60_000), ev("start", "b", "codex", at=2 * HOUR),
        ev("start", "c", "codex", at=3 * HOUR), ev("end", "c", at=4 * HOUR, duration=3.0)])
    _both(store, MemoryStore(), [
        ev("start", "a", "gemini", at=DAY - 60_000),  # moves a to the previous day and hour, renames it
        ev("end", "b", at=5 * HOUR), ev("end", "c", at=6 * HOUR, metadata={"status": "cancelled"})])
    store.clean(session_ids=["b"])
    sql = ("SELECT '{p}', (start_time / {n}) * {n}, COALESCE(category, ''), COUNT(*), "
           "SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), COUNT(end_time), "
           "COALESCE(SUM(CASE WHEN end_time IS NOT NULL THEN duration END), 0), "
           "COUNT(CASE WHEN end_time IS NOT NULL THEN duration END) FROM sessions GROUP BY 2, 3")
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        want = sorted(tuple(r) for p, n in (("hour", HOUR), ("day", DAY))
                      for r in conn.exec_driver_sql(sql.format(p=p, n=n)))
        got = sorted(tuple(r) for r in conn.exec_driver_sql(
            "SELECT period, bucket_start, category, sessions, active_sessions, ended_sessions, duration_sum, "
            "duration_count FROM session_rollups WHERE sessions <> 0"))
    assert got == want and len(want) == 4  # a (gemini) and c (codex), each in one hour and one day


def test_one_delta_function_adds_events_one_by_one_and_removes_them_by_minute() -> None:
    from vibekit_telemetry.store._batch import RollupDelta, TotalsDelta, add_event_rollups

    rollups: dict[Any, RollupDelta] = {}
    totals: dict[str, TotalsDelta] = {}
    stamps = [T0 + i * 7_000 for i in range(40)]  # 40 events over ~5 minutes, some errors with durations
    for i, ts in enumerate(stamps):
        error = i % 5 == 0
        add_event_rollups(rollups, totals, ts, "claude", "", "error" if error else "stream",
                          errors=int(error), duration_sum=float(i) if error else 0.0,
                          duration_count=int(error), duration=float(i) if error else None)
    assert sum(v.count for k, v in rollups.items() if k[0] == "day") == 40 == totals["claude"].events
    assert totals["claude"].error_events == 8
    # clean() removes what it deletes per minute bucket: the same function, sign -1.
    per_minute: dict[tuple[int, str], list[float]] = {}
    for i, ts in enumerate(stamps):
        kind = "error" if i % 5 == 0 else "stream"
        acc = per_minute.setdefault((ts // 60_000 * 60_000, kind), [0, 0, 0.0, 0])
        acc[0] += 1
        acc[1] += kind == "error"
        acc[2] += float(i) if kind == "error" else 0.0
        acc[3] += kind == "error"
    for (minute, kind), (n, errs, dsum, dcount) in per_minute.items():
        add_event_rollups(rollups, totals, minute, "claude", "", kind, count=int(n), errors=int(errs),
                          duration_sum=dsum, duration_count=int(dcount), sign=-1)
    assert all((v.count, v.error_count, v.duration_sum, v.duration_count) == (0, 0, 0.0, 0)
               for v in rollups.values())
    assert totals["claude"].is_zero()
