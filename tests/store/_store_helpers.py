"""Event-building helpers for the store tests, and another process's lock on a SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event

from vibekit_telemetry.events import TelemetryEvent

T0 = 1_700_000_000_000


def ev(kind: str, sid: str | None = "s1", category: str | None = "claude", *, at: int = 0,
       **fields: Any) -> TelemetryEvent:
    """A validated-looking event at T0 + at ms."""
    return TelemetryEvent(kind, category, session_id=sid, timestamp=T0 + at, **fields)


@contextmanager
def locked_by_another(path: Path, mode: Literal["IMMEDIATE", "EXCLUSIVE"] = "IMMEDIATE") -> Iterator[None]:
    """Hold a write lock (EXCLUSIVE: also against readers) on a SQLite file from another connection."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(f"BEGIN {mode}")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def session_plans(store: Any, call: Callable[[], object]) -> list[str]:
    """Run `call`; EXPLAIN each statement it ran on the sessions table; return the plans."""
    ran: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FROM sessions" in statement:
            ran.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", grab)
    assert ran, "the call read no sessions"
    plans = []
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_sort = off")
            for statement, params in ran:
                plans.append("\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params)))
        else:
            for statement, params in ran:
                plans.append("\n".join(str(r[-1]) for r in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, params)))
    return plans
