"""Migration 0009 on a database with events, and clamp_cursors with either kind of connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from _exporter_helpers import event
from sqlalchemy import create_engine, inspect

from vibekit_telemetry.store import migrate
from vibekit_telemetry.store.sql import SQLStore, changelog


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL of each SQL backend."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'm.db'}"


def test_upgrading_an_existing_database_numbers_its_events(url: str) -> None:
    store = SQLStore(url)
    stored = [event() for _ in range(6)]
    store.store_batch(stored)
    store.shutdown()
    engine = create_engine(url)
    migrate.downgrade(engine, "0008")
    assert "exporter_cursors" not in inspect(engine).get_table_names()
    assert "seq" not in {c["name"] for c in inspect(engine).get_columns("events")}
    migrate.upgrade(engine)
    engine.dispose()
    store = SQLStore(url)
    rows = store.read_committed(0, 100)
    assert sorted(e.event_id or "" for _, e in rows) == sorted(e.event_id or "" for e in stored)
    assert store.committed_position() == rows[-1][0] and len({p for p, _ in rows}) == 6
    later = event()
    store.store_batch([later])
    assert [e.event_id for _, e in store.read_committed(rows[-1][0], 10)] == [later.event_id]
    store.save_cursor("hook", 3)
    assert store.cursors() == {"hook": 3}
    store.shutdown()


def test_clamp_cursors_lowers_cursors_past_the_newest_rowid(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SQLStore(path)
    store.store_batch([event() for _ in range(4)])
    store.save_cursor("a", 10)
    store.save_cursor("b", 2)
    with store.engine.begin() as conn:
        changelog.clamp_cursors(conn, store.sql)
    assert store.cursors() == {"a": 4, "b": 2}
    store.shutdown()
