"""How far each exporter is behind its store, read from the persisted cursors (no worker needed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..events import now_ms
from ..store.base import ChangeLog


def lag_report(store: ChangeLog, configured: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One row per destination: name, cursor, committed, lag (events) and the oldest unsent event's age.

    `configured` names exporters of the configuration that may not have saved a cursor yet (shown
    with cursor None: they have not delivered anything). Lag is an upper bound on PostgreSQL, where
    rolled-back inserts leave gaps in the positions.
    """
    cursors = store.cursors()
    committed = store.committed_position()
    now = now_ms()
    rows: list[dict[str, Any]] = []
    for name in sorted({*cursors, *configured}):
        cursor = cursors.get(name)
        row: dict[str, Any] = {"name": name, "cursor": cursor, "committed": committed,
                               "lag": None if cursor is None else max(0, committed - cursor),
                               "oldest_unsent_age_s": None}
        if cursor is not None and cursor < committed:
            pending = store.read_committed(cursor, 1)
            if pending and pending[0][1].timestamp:
                row["oldest_unsent_age_s"] = max(0.0, (now - pending[0][1].timestamp) / 1000)
        rows.append(row)
    return rows
