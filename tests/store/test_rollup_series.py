"""rollup_series: the analytics read API answers the same on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.store.base import ReadSeries, RollupPoint

MIN = 60_000
BASE = T0 // 3_600_000 * 3_600_000  # an hour boundary, so minute and hour buckets are easy to name


def _seed(store: ReadSeries) -> None:
    store.store_batch([  # type: ignore[attr-defined]
        ev("start", "a", "claude", at=BASE - T0),
        ev("stream", "a", None, at=BASE - T0 + 1000, duration=100.0),
        ev("stream", "a", None, at=BASE - T0 + 2000, duration=300.0),
        ev("error", "a", None, at=BASE - T0 + MIN + 5),
        ev("end", "a", None, at=BASE - T0 + MIN + 10, duration=1500.0),
        ev("start", "b", "codex", at=BASE - T0 + 2 * MIN),
        ev("stream", "b", None, at=BASE - T0 + 2 * MIN + 1, duration=50.0),
    ])


def _key(p: RollupPoint) -> tuple[object, ...]:
    return (p.bucket_start - BASE, p.category, p.event_type, p.count, p.error_count, p.duration_sum,
            p.duration_count, p.duration_min, p.duration_max)


def test_minute_series_per_agent_and_type_with_duration_statistics(store: ReadSeries) -> None:
    _seed(store)
    points = store.rollup_series("minute", BASE, BASE + 10 * MIN)
    assert [_key(p) for p in points] == [
        (0, "claude", "start", 1, 0, 0.0, 0, None, None),
        (0, "claude", "stream", 2, 0, 400.0, 2, 100.0, 300.0),
        (MIN, "claude", "end", 1, 0, 1500.0, 1, 1500.0, 1500.0),
        (MIN, "claude", "error", 1, 1, 0.0, 0, None, None),
        (2 * MIN, "codex", "start", 1, 0, 0.0, 0, None, None),
        (2 * MIN, "codex", "stream", 1, 0, 50.0, 1, 50.0, 50.0),
    ]


def test_range_categories_and_hour_period(store: ReadSeries) -> None:
    _seed(store)
    # Buckets starting in [since, until]: the first minute is left out.
    assert {p.bucket_start - BASE for p in store.rollup_series("minute", BASE + MIN, BASE + 10 * MIN)} == {MIN, 2 * MIN}
    only_codex = store.rollup_series("minute", BASE, BASE + 10 * MIN, ["codex"])
    assert {p.category for p in only_codex} == {"codex"}
    hours = store.rollup_series("hour", BASE, BASE)
    assert sum(p.count for p in hours) == 7
    assert sum(p.error_count for p in hours) == 1


@pytest.mark.parametrize(("args", "field"), [
    (("week", 0, 1), "period"), (("minute", "0", 1), "since"), (("minute", 5, 1), "until"),
])
def test_bad_arguments_name_the_field(store: ReadSeries, args: tuple[object, ...], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        store.rollup_series(*args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_every_store_implements_the_protocol(store: object) -> None:
    assert isinstance(store, ReadSeries)
