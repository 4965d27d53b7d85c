"""The ChangeLog contract (store.base.ChangeLog) on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _exporter_helpers import event

from vibekit_telemetry.store.base import ChangeLog


def _read_all(store: Any, after: int = 0, page: int = 7) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    while True:
        rows = store.read_committed(after, page)
        if not rows:
            return out
        out += rows
        after = rows[-1][0]


def test_an_empty_store_has_nothing_committed(make_store: Callable[[], Any]) -> None:
    store = make_store()
    assert isinstance(store, ChangeLog)
    assert store.committed_position() == 0
    assert store.read_committed(0, 10) == []
    assert store.load_cursor("hook") is None and store.cursors() == {}


def test_positions_follow_commit_order_and_pages_return_every_event_once(make_store: Callable[[], Any]) -> None:
    store = make_store()
    batches = [[event(text=f"b{b}e{i}") for i in range(5)] for b in range(4)]
    for batch in batches:
        store.store_batch(batch)
    rows = _read_all(store)
    positions = [p for p, _ in rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions) == 20
    assert [e.event_id for _, e in rows] == [e.event_id for b in batches for e in b]
    assert store.committed_position() == positions[-1]
    first = rows[0][1]
    assert (first.label, first.metadata, first.category, first.action) == ("b0e0", {"n": "b0e0"}, "claude", "code")
    # Reading after a position returns exactly what follows it.
    assert [p for p, _ in store.read_committed(positions[9], 3)] == positions[10:13]
    assert store.read_committed(positions[-1], 10) == []


def test_position_before_is_just_below_the_first_event_stamped_since(make_store: Callable[[], Any]) -> None:
    store = make_store()
    assert store.position_before(1_000) == 0  # nothing stored
    base = 1_800_000_000_000
    store.store_batch([event(at=base + i) for i in range(3)])  # stamped base .. base+2
    store.store_batch([event(at=base + 10), event(at=base + 5)])  # committed later, stamped out of order
    rows = _read_all(store)
    positions = [p for p, _ in rows]
    assert store.position_before(base) == positions[0] - 1  # everything
    assert store.position_before(base + 2) == positions[1]  # from the third event on
    assert store.position_before(base + 5) == positions[2]  # the first stamped >= base+5 is the 4th committed
    assert store.position_before(base + 11) == store.committed_position() == positions[-1]  # none: the end
    assert [e.timestamp for _, e in store.read_committed(store.position_before(base + 5), 10)] == [
        base + 10, base + 5]


def test_a_replayed_batch_takes_no_new_positions(make_store: Callable[[], Any]) -> None:
    store = make_store()
    batch = [event(), event()]
    store.store_batch(batch)
    top = store.committed_position()
    assert store.store_batch(batch).duplicates == 2
    assert store.committed_position() == top and store.read_committed(top, 10) == []


def test_cursors_are_saved_updated_and_listed(make_store: Callable[[], Any]) -> None:
    store = make_store()
    store.save_cursor("hook-a", 5)
    store.save_cursor("hook-b", 1)
    store.save_cursor("hook-a", 9)
    assert store.load_cursor("hook-a") == 9 and store.load_cursor("nobody") is None
    assert store.cursors() == {"hook-a": 9, "hook-b": 1}
    assert make_store().load_cursor("hook-a") == 9  # another store object on the same database


def test_deleting_the_newest_rows_then_writing_misses_nothing(make_store: Callable[[], Any]) -> None:
    store = make_store()
    store.store_batch([event(sid=None, text="old") for _ in range(5)])
    store.store_batch([event("start", sid="newest", text="gone"), event("stream", sid="newest", text="gone")])
    top = store.committed_position()
    store.save_cursor("hook", top)  # everything so far was delivered
    assert store.clean(session_ids=["newest"]) == 2  # the two newest rows
    fresh = [event(text="new") for _ in range(3)]
    store.store_batch(fresh)
    # SQLite reuses the deleted rowids: clean() lowered the cursor so the new rows sit above it.
    cursor = store.load_cursor("hook")
    assert cursor is not None and cursor <= top
    assert [e.event_id for _, e in _read_all(store, cursor)] == [e.event_id for e in fresh]
