"""store_batch's typed errors: TransientStoreError to wait out, RefusedRowError for rows the database refuses."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _store_helpers import ev, locked_by_another

from pg_support import PG_DSN
from vibekit_telemetry.errors import RefusedRowError, TransientStoreError
from vibekit_telemetry.pipeline import is_data_error, is_transient
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """An initialised SQLStore on a real SQLite file or a fresh PostgreSQL schema."""
    url = str(tmp_path / "t.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = SQLStore(url)
    store.initialize()
    yield store
    store.shutdown()


@pytest.mark.parametrize("bad", [
    pytest.param(lambda: ev("stream", at=1, label="surr\ud800bad"), id="lone-surrogate"),
    pytest.param(lambda: ev("stream", at=1, stream_data="nul\x00byte"), id="nul-byte"),
])
def test_a_refused_row_raises_refused_row_error_and_stores_nothing(
        sql_store: SQLStore, bad: Callable[[], Any]) -> None:
    sql_store.store_batch([ev("start")])
    batch = [ev("stream", at=2, stream_data="fine"), bad()]
    try:
        sql_store.store_batch(batch)
    except RefusedRowError as exc:
        assert exc.__cause__ is not None
        assert is_data_error(exc)  # the pipeline still bisects the batch down to the bad row
        assert not is_transient(exc)
    else:
        # SQLite keeps NUL bytes in TEXT; only a database that refuses the row must raise.
        assert sql_store.name == "sqlite"
        return
    assert [e.event_type for e in sql_store.query(QueryFilter())] == ["start"]
    session = sql_store.get_session("s1")
    assert session is not None and session.event_count == 1
    assert sql_store.store_batch([ev("stream", at=3)]).stored == 1  # the connection still works


def test_an_integer_past_64_bits_is_a_refused_row_on_sqlite(tmp_path: Path) -> None:
    store = SQLStore(tmp_path / "t.db")
    store.initialize()
    try:
        with pytest.raises(RefusedRowError) as info:
            store.store_batch([ev("start", value=2 ** 70)])
        assert isinstance(info.value.__cause__, OverflowError)
        assert store.query(QueryFilter()) == []
    finally:
        store.shutdown()


def test_a_locked_sqlite_database_is_transient_and_names_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLStore(path, busy_timeout_ms=50)
    store.initialize()
    with locked_by_another(path), pytest.raises(TransientStoreError) as info:
        store.store_batch([ev("start")])
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert "database is locked" in str(info.value) and is_transient(info.value)
    assert store.store_batch([ev("start")]).stored == 1
    store.shutdown()


def test_vacuum_and_reindex_on_a_locked_sqlite_database_raise_typed_errors(tmp_path: Path) -> None:
    # `telemetry vacuum` / `reindex` print these as one clean line (the CLI knows StoreError, not sqlite3).
    path = tmp_path / "t.db"
    store = SQLStore(path, busy_timeout_ms=50)
    store.initialize()
    store.store_batch([ev("start")])
    with locked_by_another(path, "EXCLUSIVE"):
        for maintenance in (store.compact, store.reindex):
            with pytest.raises(TransientStoreError) as info:
                maintenance()
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            assert "database is locked" in str(info.value) and str(path) in str(info.value)
    store.compact()  # the lock gone, the same store works
    assert [e.event_type for e in store.query(QueryFilter())] == ["start"]
    store.shutdown()


def test_a_dropped_postgresql_connection_is_transient_and_the_next_batch_reconnects(pg_url: str) -> None:
    name = "vk_" + uuid.uuid4().hex[:10]
    store = SQLStore(f"{pg_url}&application_name={name}")
    store.initialize()
    try:
        store.store_batch([ev("start")])
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = %s", (name,)).fetchall()
        assert killed
        with pytest.raises(TransientStoreError) as info:
            store.store_batch([ev("stream", at=1)])
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
        assert store.store_batch([ev("stream", at=1)]).stored == 1
        session = store.get_session("s1")
        assert session is not None and session.event_count == 2
    finally:
        store.shutdown()


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+asyncpg://postgres@127.0.0.1/test", r"unsupported driver 'asyncpg'.*postgresql\+psycopg://"),
    ("postgresql+psycopg2://postgres@127.0.0.1/test", r"unsupported driver 'psycopg2'.*psycopg 3"),
    ("sqlite+aiosqlite:///t.db", r"unsupported driver 'aiosqlite'.*sqlite:///"),
    ("mysql://root@127.0.0.1/test", r"unsupported database URL mysql://.*expected sqlite or postgresql"),
])
def test_a_database_url_the_store_cannot_use_is_named_with_what_to_write_instead(url: str, expected: str) -> None:
    # asyncpg's URL used to end in a bare ModuleNotFoundError from inside SQLAlchemy.
    from vibekit_telemetry import Telemetry
    from vibekit_telemetry.errors import StoreError

    with pytest.raises(StoreError, match=expected):
        SQLStore(url).initialize()
    with pytest.raises(StoreError, match=expected):
        Telemetry(database_url=url)
