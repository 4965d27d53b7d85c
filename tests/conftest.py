"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run every test in its own directory with no TELEMETRY_* variables from the outer shell."""
    import os

    for name in list(os.environ):
        if name.startswith("TELEMETRY_") or name == "DO_NOT_TRACK":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _pg_trgm_in_public() -> None:
    """Keep pg_trgm in `public`, never in a test's own schema.

    Migration 0003 creates the extension in the first schema of the search_path; a test schema
    dropped with CASCADE then takes the extension, and every other schema's trigram indexes, with it
    ("referenced operator class was concurrently dropped" in a test running beside it).
    """
    from pg_support import PG_DSN, PG_SKIP

    if PG_SKIP:
        return
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                           "WHERE e.extname = 'pg_trgm'").fetchone()
        try:
            if row is None:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            elif row[0] != "public":
                conn.execute("ALTER EXTENSION pg_trgm SET SCHEMA public")
        except psycopg.Error:
            pass  # not installed or not allowed: the store falls back to ILIKE, tests still run


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A postgresql+psycopg URL whose search_path is a schema created for this test and dropped after."""
    from pg_support import PG_DSN, PG_SKIP

    if PG_SKIP:
        pytest.skip(PG_SKIP)
    import uuid

    import psycopg

    schema = "vk_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file path (not yet created)."""
    return tmp_path / "data" / "telemetry.db"


@pytest.fixture
def make_telemetry(db_path: Path) -> Iterator[Callable[..., Telemetry]]:
    """Create Telemetry instances on the test's database; all are shut down afterwards."""
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        options.setdefault("db_path", str(db_path))
        options.setdefault("stream_flush_interval_ms", 50)
        telemetry = Telemetry(**options)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()
