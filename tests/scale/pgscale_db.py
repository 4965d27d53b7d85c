"""A PostgreSQL database of its own for each partitioning / totals test (CREATE DATABASE pgscale_<hex>)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yield a postgresql+psycopg URL of a new, empty database; drop it after (skip without PostgreSQL)."""
    from pg_support import PG_DSN, PG_SKIP

    if PG_SKIP:
        pytest.skip(PG_SKIP)
    import psycopg

    name = "pgscale_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
