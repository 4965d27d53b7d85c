"""iter_rows: the matching events as pages of raw rows, the same as iter_events gives, on every backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from _store_helpers import T0, ev

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import PUBLIC_FIELDS, TelemetryEvent
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.base import EventIterable, RowIterable

N = 2_000


@pytest.fixture
def filled(make_store: Callable[..., Any]) -> Any:
    """N events of 20 sessions; timestamps repeat (4 per ms) so pages must break ties by event id."""
    store = make_store()
    batch: list[TelemetryEvent] = []
    for i in range(N):
        sid = f"s{i % 20:02d}"
        kind = "start" if i < 20 else "error" if i % 13 == 0 else "stream"
        batch.append(ev(kind, sid, "claude" if i % 2 else "codex", at=i // 4, event_id=f"e{i:05d}",
                        stream_data=f"chunk {i} é😀\n" if kind == "stream" else None, value=i / 3 if i % 5 else None,
                        metadata={"i": i, "nested": {"list": [1, None, "x"]}} if i % 3 == 0 else None,
                        context={"env": "test"} if i % 7 == 0 else None, label="a,b;\"c\"" if i % 11 == 0 else None))
    store.store_batch(batch)
    return store


def _as_row(event: TelemetryEvent, columns: tuple[str, ...]) -> tuple[Any, ...]:
    """The event as iter_rows should give it: metadata and context as JSON text (compared parsed)."""
    return tuple(getattr(event, c) for c in columns)


def _parsed(row: tuple[Any, ...], columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(json.loads(v) if c in ("metadata", "context") and v is not None else v
                 for c, v in zip(columns, row, strict=True))


@pytest.mark.parametrize("query", [QueryFilter(), QueryFilter(order="desc"),
                                   QueryFilter(categories=["claude"], event_types=["stream"], limit=333, offset=7),
                                   QueryFilter(session_ids=["s03", "s04"], since=1_700_000_000_100)],
                         ids=["all", "desc", "limit-offset", "sessions-since"])
def test_iter_rows_gives_what_iter_events_gives_in_pages(filled: Any, query: QueryFilter) -> None:
    assert isinstance(filled, RowIterable) and isinstance(filled, EventIterable)  # what exports check for
    pages = list(filled.iter_rows(query, chunk_size=150))
    assert pages and all(0 < len(page) <= 150 for page in pages)
    rows = [row for page in pages for row in page]
    assert all(type(row) is tuple and len(row) == len(PUBLIC_FIELDS) for row in rows)
    expected = [_as_row(e, PUBLIC_FIELDS) for e in filled.iter_events(query, chunk_size=500)]
    assert [_parsed(tuple(r), PUBLIC_FIELDS) for r in rows] == expected
    assert all(isinstance(r[PUBLIC_FIELDS.index("metadata")], str | None) for r in rows)


def test_iter_rows_gives_the_asked_columns_in_the_asked_order(filled: Any) -> None:
    # Neither timestamp nor event_id asked: the keyset still pages by them.
    columns = ("session_id", "stream_data", "category")
    rows = [tuple(r) for page in filled.iter_rows(QueryFilter(), columns, chunk_size=99) for r in page]
    assert len(rows) == N
    assert rows == [_as_row(e, columns) for e in filled.iter_events(QueryFilter(), chunk_size=500)]


def test_iter_rows_refuses_bad_columns_and_chunk_sizes(filled: Any) -> None:
    for columns in (["nope"], "event_id", [], ["event_id", "event_id"], [1]):
        with pytest.raises(ValidationError) as caught:
            next(iter(filled.iter_rows(QueryFilter(), columns)))
        assert caught.value.field == "columns"
    for size in (0, -1, True, 1.5):
        with pytest.raises(ValidationError) as caught:
            next(iter(filled.iter_rows(QueryFilter(), None, size)))
        assert caught.value.field == "chunk_size"


def test_iter_rows_of_nothing_yields_no_page(filled: Any) -> None:
    assert list(filled.iter_rows(QueryFilter(session_ids=["missing"]))) == []


def test_later_pages_seek_the_timestamp_index_instead_of_scanning_it(tmp_path: Any) -> None:
    # `ts > t OR (ts = t AND id > i)` made SQLite scan the index from its start for every page, so an
    # export's page k cost O(k); the keyset condition must be a range SQLite can seek.
    import sqlite3

    from sqlalchemy import select
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from vibekit_telemetry.store import SQLStore
    from vibekit_telemetry.store.schema import events
    from vibekit_telemetry.store.sql.read import keyset_after

    path = tmp_path / "plan.db"
    store = SQLStore(str(path))
    store.initialize()
    store.shutdown()
    for desc in (False, True):
        order = [events.c.timestamp.desc(), events.c.event_id.desc()] if desc else [events.c.timestamp,
                                                                                    events.c.event_id]
        stmt = select(events.c.event_id).where(keyset_after((T0, "e1"), desc)).order_by(*order).limit(10)
        # Bound parameters, as the store runs it: with literals SQLite plans even the OR form as a range.
        compiled = stmt.compile(dialect=sqlite_dialect.dialect())
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        with sqlite3.connect(path) as conn:
            plan = " ".join(str(step[-1]) for step in conn.execute(f"EXPLAIN QUERY PLAN {compiled}", params))
        assert "SEARCH events USING INDEX ix_events_timestamp (timestamp" in plan, plan
