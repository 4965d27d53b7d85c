"""ReadBreakdown (rollup_totals, event_breakdown, session_breakdown): the same answers on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.store.base import ReadBreakdown, ReadSeries, RollupPoint

MIN = 60_000
HOUR = 3_600_000
BASE = T0 // HOUR * HOUR  # an hour boundary: the window below holds one whole hour


def _at(minutes: float) -> int:
    return int(BASE - T0 + minutes * MIN)


def _seed(store: Any) -> None:
    def e(kind: str, sid: str, cat: str, action: str, minutes: float, **fields: Any) -> Any:
        return ev(kind, sid, cat, at=_at(minutes), action=action, **fields)

    store.store_batch([
        e("start", "s1", "claude", "code", -30), e("stream", "s1", "claude", "code", -29, duration=100.0),
        e("stream", "s1", "claude", "code", 2, duration=300.0), e("end", "s1", "claude", "code", 10),
        e("start", "s2", "claude", "chat", 5), e("stream", "s2", "claude", "chat", 6, duration=50.0),
        e("error", "s2", "claude", "chat", 7), e("end", "s2", "claude", "chat", 65, metadata={"status": "error"}),
        e("start", "s3", "codex", "code", 70), e("stream", "s3", "codex", "code", 71),
        e("start", "s4", "claude", "code", 20), e("end", "s4", "claude", "code", 21),
    ])


def _key(p: RollupPoint) -> tuple[object, ...]:
    return (p.bucket_start, p.category, p.event_type, p.count, p.error_count, p.duration_sum, p.duration_count,
            p.duration_min, p.duration_max)


def _summed(points: list[RollupPoint], size: int | None, first: int) -> list[tuple[object, ...]]:
    """Minute points summed per bucket: what rollup_totals must return."""
    out: dict[tuple[int, str, str], RollupPoint] = {}
    for p in points:
        b = first if size is None else p.bucket_start // size * size
        q = out.setdefault((b, p.category, p.event_type), RollupPoint(b, p.category, p.event_type, 0, 0, 0.0, 0))
        q.count += p.count
        q.error_count += p.error_count
        q.duration_sum += p.duration_sum
        q.duration_count += p.duration_count
        for attr, pick in (("duration_min", min), ("duration_max", max)):
            value, mine = getattr(p, attr), getattr(q, attr)
            if value is not None:
                setattr(q, attr, value if mine is None else pick(mine, value))
    return [_key(out[k]) for k in sorted(out)]


@pytest.mark.parametrize("bucket", [None, "minute", "hour"])
def test_rollup_totals_add_up_to_the_minute_series(store: Any, bucket: str | None) -> None:
    _seed(store)
    since, until = T0 + _at(-40) + 1234, T0 + _at(90)  # not minute-aligned: whole minutes are read
    first = since // MIN * MIN
    minutes = store.rollup_series("minute", first, until)
    expected = _summed(minutes, None if bucket is None else {"minute": MIN, "hour": HOUR}[bucket], first)
    assert [_key(p) for p in store.rollup_totals(since, until, bucket=bucket)] == expected
    assert sum(p.count for p in store.rollup_totals(since, until)) == 12
    # A window that ends inside a minute still counts the whole minute; one agent only.
    codex = store.rollup_totals(T0 + _at(60), T0 + _at(70) + 5, ["codex"])
    assert [(p.category, p.event_type, p.count) for p in codex] == [("codex", "start", 1)]


def test_event_breakdown_by_agent_and_mode(store: Any) -> None:
    _seed(store)
    groups = store.event_breakdown(["category", "action"])
    assert [(g.key, g.events, g.errors) for g in groups] == [
        (("claude", "code"), 6, 0), (("claude", "chat"), 4, 1), (("codex", "code"), 2, 0)]
    by_type = store.event_breakdown(["event_type"], since=T0 + _at(0), until=T0 + _at(60))
    assert {g.key[0]: g.events for g in by_type} == {"stream": 2, "start": 2, "end": 2, "error": 1}
    assert [(g.key, g.events) for g in store.event_breakdown([], categories=["codex"])] == [((), 2)]


def test_session_breakdown_counts_and_percentiles(store: Any) -> None:
    _seed(store)
    agents = store.session_breakdown(["category"])
    assert [(g.key, g.sessions, g.active, g.duration_count) for g in agents] == [
        (("claude",), 3, 0, 3), (("codex",), 1, 1, 0)]
    assert agents[0].duration_sum == pytest.approx((40 + 60 + 1) * MIN)
    rows = store.session_breakdown(["category", "status"], percentiles=True)
    assert [(g.key, g.sessions, g.ended) for g in rows] == [
        (("claude", "completed"), 2, 2), (("claude", "error"), 1, 1), (("codex", "active"), 1, 0)]
    done = rows[0]
    # Nearest rank over 2 ended sessions (1 and 40 minutes): p50 is the first, p90..p99 the second.
    assert done.duration_percentiles == {50: 1 * MIN, 90: 40 * MIN, 95: 40 * MIN, 99: 40 * MIN}
    assert done.events_percentiles == {50: 2.0, 90: 4.0, 95: 4.0, 99: 4.0}
    assert rows[2].duration_percentiles == {} and rows[2].events_percentiles == {}
    # Sessions by start time: only s2 and s4 started in the first whole hour.
    assert [(g.key, g.sessions) for g in store.session_breakdown(["action"], since=T0 + _at(0),
                                                                   until=T0 + _at(59))] == [
        (("chat",), 1), (("code",), 1)]
    total = store.session_breakdown([], percentiles=True)
    assert [(g.sessions, g.ended) for g in total] == [(4, 3)]
    assert total[0].duration_percentiles[50] == 40 * MIN


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: s.event_breakdown(["status"]), "by"),
    (lambda s: s.session_breakdown(["event_type"]), "by"),
    (lambda s: s.session_breakdown(["category", "category"]), "by"),
    (lambda s: s.event_breakdown("category"), "by"),
    (lambda s: s.rollup_totals(0, 10, bucket="week"), "bucket"),
    (lambda s: s.rollup_totals(10, 5), "until"),
    (lambda s: s.rollup_totals("0", 5), "since"),
    (lambda s: s.session_breakdown([], categories="claude"), "categories"),
])
def test_bad_arguments_name_the_field(store: Any, call: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(store)
    assert info.value.field == field


def test_every_store_implements_the_protocol(store: object) -> None:
    assert isinstance(store, ReadBreakdown) and isinstance(store, ReadSeries)
