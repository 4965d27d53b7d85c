"""iter_events streams any number of events in constant memory, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _store_helpers import ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.base import EventIterable

N = 50_000


def _fill(store: Any, n: int) -> None:
    """n events of 100 sessions; timestamps repeat (10 per ms), so keyset pages must break ties by id."""
    batch: list[TelemetryEvent] = []
    for i in range(n):
        sid = f"s{i % 100:03d}"
        kind = "start" if i < 100 else "error" if i % 97 == 0 else "stream"
        batch.append(ev(kind, sid, "claude" if i % 2 else "codex", at=i // 10, event_id=f"e{i:06d}",
                        stream_data="x" * 200 if kind == "stream" else None))
        if len(batch) == 5000:
            store.store_batch(batch)
            batch = []
    if batch:
        store.store_batch(batch)


@pytest.fixture
def big_store(make_store: Callable[..., Any]) -> Any:
    """A store of any backend holding N events."""
    store = make_store()
    _fill(store, N)
    return store


def _count_peak(events: Iterator[TelemetryEvent]) -> tuple[int, int, list[str]]:
    """Consume events one at a time (keeping only a few ids); return (count, peak traced bytes, sample)."""
    gc.collect()
    tracemalloc.start()
    n, sample = 0, []
    for event in events:
        n += 1
        if n % 5000 == 1:
            sample.append(str(event.event_id))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return n, peak, sample


def test_iter_events_streams_every_event_in_order_in_constant_memory(big_store: Any) -> None:
    assert isinstance(big_store, EventIterable)
    n, peak, sample = _count_peak(big_store.iter_events(QueryFilter(), chunk_size=250))
    assert n == N
    assert sample == [f"e{i:06d}" for i in range(0, N, 5000)]
    gc.collect()
    tracemalloc.start()
    everything = big_store.query(QueryFilter())
    full = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(everything) == N
    del everything
    # A chunk of 250 events is 0.5 % of them: streaming must stay far below holding them all.
    assert peak < full / 10, (peak, full)


def test_iter_events_pages_follow_the_filter_order_limit_and_offset(big_store: Any) -> None:
    ids = [e.event_id for e in big_store.iter_events(QueryFilter(order="desc"), chunk_size=777)]
    assert ids == [f"e{i:06d}" for i in reversed(range(N))]
    f = QueryFilter(categories=["claude"], event_types=["stream"], limit=1234, offset=10)
    streamed = [e.event_id for e in big_store.iter_events(f, chunk_size=100)]
    assert streamed == [e.event_id for e in big_store.query(f)]
    assert len(streamed) == 1234
    errors = QueryFilter(event_types=["error"], order="desc")
    assert [e.event_id for e in big_store.iter_events(errors, chunk_size=7)] == [
        e.event_id for e in big_store.query(errors)]


def test_iter_events_with_nothing_matching_and_a_bad_chunk_size(store: Any) -> None:
    store.store_batch([ev("start")])
    assert list(store.iter_events(QueryFilter(categories=["nobody"]), chunk_size=1)) == []
    assert [e.event_type for e in store.iter_events(QueryFilter(), chunk_size=1)] == ["start"]
    with pytest.raises(ValidationError, match="chunk_size"):
        list(store.iter_events(QueryFilter(), chunk_size=0))


def test_events_written_between_pages_after_the_cursor_are_seen(store: Any) -> None:
    store.store_batch([ev("start", at=0, event_id="a"), ev("stream", at=1, event_id="b")])
    pages = store.iter_events(QueryFilter(), chunk_size=1)
    assert next(pages).event_id == "a"
    store.store_batch([ev("stream", at=2, event_id="c")])
    assert [e.event_id for e in pages] == ["b", "c"]
