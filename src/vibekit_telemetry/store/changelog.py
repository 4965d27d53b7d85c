"""The change log exporters follow: committed events by position, and each exporter's persisted cursor.

A position orders events by commit and is never handed out twice:

- SQLite: the events rowid. One writer at a time, so rowids grow in commit order. SQLite gives a new
  row max(rowid) + 1, so deleting the newest rows would let new rows take their rowids again: whoever
  deletes rows calls `clamp_cursors` in the same transaction, lowering every cursor to max(rowid), and
  a follower lowers its own in-memory position the same way (see exporters/follower.py). VACUUM keeps
  the rowids of this table (SQLite's transfer optimisation, checked on 3.40) although the SQLite docs
  reserve the right to renumber tables without an INTEGER PRIMARY KEY.
- PostgreSQL: events.seq, an identity column (migration 0009) with a unique index. One SQLStore
  writes under one lock, so its rows commit in seq order. Writers in several processes can commit
  seq values out of order (a transaction that took 101..200 may commit before one holding 1..100):
  a follower reading in between would move past 1..100. Issue #16 (replicas) deals with that.
- Memory: an insertion counter (MemoryChangeLog below).

The SQL functions take the store's Engine and open their own short connections, so an exporter's
reads and cursor saves never hold the writer's lock or its connection.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from ..events import TelemetryEvent, now_ms
from ..privacy.crypto import decrypt_meta, decrypt_text

if TYPE_CHECKING:
    from sqlalchemy import Engine

# SQLAlchemy and the schema are imported inside the SQL functions: MemoryStore uses this module too,
# and `import vibekit_telemetry.store` must not pull SQLAlchemy in.

# Lowers every cursor above the newest rowid to it (SQLite; PostgreSQL never reuses seq values).
CLAMP_SQL: Final = ("UPDATE exporter_cursors SET position = (SELECT COALESCE(MAX(rowid), 0) FROM events) "
                    "WHERE position > (SELECT COALESCE(MAX(rowid), 0) FROM events)")


def position_column(dialect_name: str) -> str:
    """Return the events column that holds the change-log position on this dialect."""
    return "rowid" if dialect_name == "sqlite" else "seq"


def committed_position(engine: Engine) -> int:
    """Return the position of the newest committed event (0 when the table is empty)."""
    from sqlalchemy import literal_column, select

    from .schema import events

    pos: Any = literal_column(position_column(engine.dialect.name))
    with engine.connect() as conn:
        return int(conn.execute(select(pos).select_from(events).order_by(pos.desc()).limit(1)).scalar() or 0)


def read_committed(engine: Engine, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
    """Return up to `limit` committed events with position > after, oldest first, with their positions."""
    if limit <= 0:
        return []
    from sqlalchemy import literal_column, select

    from .schema import EVENT_COLUMNS, events

    pos: Any = literal_column(position_column(engine.dialect.name))
    stmt = (select(pos, *(events.c[name] for name in EVENT_COLUMNS)).select_from(events)
            .where(pos > after).order_by(pos).limit(limit))
    with engine.connect() as conn:
        return [(int(row[0]), _row_to_event(EVENT_COLUMNS, row[1:])) for row in conn.execute(stmt)]


def _row_to_event(names: Sequence[str], row: Sequence[Any]) -> TelemetryEvent:
    """An events row (columns `names`) as a TelemetryEvent, its JSON decoded."""
    values = dict(zip(names, row, strict=True))
    meta_json, ctx_json = decrypt_meta(values.pop("metadata")), values.pop("context")
    # Exporters send plaintext: values encrypted at rest are decrypted here (privacy/crypto.py).
    values["label"] = decrypt_text(values["label"], "label")
    values["stream_data"] = decrypt_text(values["stream_data"], "stream_data")
    event = TelemetryEvent(**values, metadata=json.loads(meta_json) if meta_json else None,
                           context=json.loads(ctx_json) if ctx_json else None)
    event.metadata_json, event.context_json = meta_json, ctx_json
    return event


def load_cursor(engine: Engine, name: str) -> int | None:
    """Return exporter `name`'s persisted position, or None if it never saved one."""
    from sqlalchemy import select

    from .schema import exporter_cursors

    c = exporter_cursors.c
    with engine.connect() as conn:
        value = conn.execute(select(c.position).where(c.name == name)).scalar()
    return None if value is None else int(value)


def save_cursor(engine: Engine, name: str, position: int) -> None:
    """Persist exporter `name`'s position in its own short transaction (insert or update)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from .schema import exporter_cursors

    # Both dialects' INSERT ... ON CONFLICT DO UPDATE take the same arguments.
    insert: Any = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert
    stmt = insert(exporter_cursors).values(name=name, position=int(position), updated_at=now_ms())
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
        "position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at})
    with engine.begin() as conn:
        conn.execute(stmt)


def cursors(engine: Engine) -> dict[str, int]:
    """Return every persisted exporter position by name."""
    from sqlalchemy import select

    from .schema import exporter_cursors

    c = exporter_cursors.c
    with engine.connect() as conn:
        return {str(name): int(p) for name, p in conn.execute(select(c.name, c.position).order_by(c.name))}


def clamp_cursors(conn_or_cursor: Any) -> None:
    """Lower every cursor to max(rowid) after rows were deleted (SQLite; a no-op on PostgreSQL).

    Call it inside the deleting transaction, with its SQLAlchemy Connection or DBAPI cursor, as the
    text-index watermark is clamped: new rows may take the deleted rows' rowids again and must not
    sit at or below a cursor.
    """
    if hasattr(conn_or_cursor, "exec_driver_sql"):  # a SQLAlchemy Connection
        if conn_or_cursor.dialect.name == "sqlite":
            conn_or_cursor.exec_driver_sql(CLAMP_SQL)
        return
    if type(conn_or_cursor).__module__ == "sqlite3":  # a DBAPI cursor: only sqlite3 reuses positions
        conn_or_cursor.execute(CLAMP_SQL)


class MemoryChangeLog:
    """MemoryStore's change log: positions from an insertion counter, cursors in a dict.

    Not locked itself: MemoryStore calls it under its own lock.
    """

    def __init__(self) -> None:
        self._ids: list[str] = []  # the event id at position i + 1
        self._position: dict[str, int] = {}  # an event id's newest position (a re-stored id moves on)
        self._cursors: dict[str, int] = {}

    def append(self, event_ids: Sequence[str]) -> None:
        """Give the events just stored the next positions, in order."""
        for event_id in event_ids:
            self._ids.append(event_id)
            self._position[event_id] = len(self._ids)

    def committed_position(self) -> int:
        """Return the newest position handed out."""
        return len(self._ids)

    def read_committed(self, after: int, limit: int,
                       stored: Mapping[str, TelemetryEvent]) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` stored events above `after`, skipping deleted ones, as private copies."""
        out: list[tuple[int, TelemetryEvent]] = []
        for index in range(max(0, after), len(self._ids)):
            if len(out) >= limit:
                break
            event_id = self._ids[index]
            event = stored.get(event_id)
            if event is not None and self._position.get(event_id) == index + 1:
                out.append((index + 1, replace(event, metadata=copy.deepcopy(event.metadata),
                                               context=copy.deepcopy(event.context))))
        return out

    def load_cursor(self, name: str) -> int | None:
        """Return exporter `name`'s position, or None."""
        return self._cursors.get(name)

    def save_cursor(self, name: str, position: int) -> None:
        """Keep exporter `name`'s position (for as long as the process lives)."""
        self._cursors[name] = int(position)

    def cursors(self) -> dict[str, int]:
        """Return every exporter's position by name."""
        return dict(sorted(self._cursors.items()))
