"""The SQL side of the change log exporters follow (see store/changelog.py for the guarantees).

Positions are the Dialect's `position_column` (SQLite: rowid; PostgreSQL: the seq identity column).
Where positions may commit out of order (PostgreSQL with several writer processes), followers read
only up to the safe horizon (store/sql/horizon.py), and that horizon is the committed position.
Every function opens its own short connection from the store's Engine, so an exporter's reads and
cursor saves never hold the writer's lock or connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine, func, literal_column, select

from ...events import TelemetryEvent, now_ms
from ...privacy.crypto import decrypt_meta, decrypt_text
from ..schema import EVENT_COLUMNS, events, exporter_cursors
from .dialect import Dialect
from .horizon import horizon_of

# Lowers every cursor above the newest position to it (only where positions are reused: SQLite).
CLAMP_SQL: Final = ("UPDATE exporter_cursors SET position = (SELECT COALESCE(MAX(rowid), 0) FROM events) "
                    "WHERE position > (SELECT COALESCE(MAX(rowid), 0) FROM events)")


def committed_position(engine: Engine, dialect: Dialect) -> int:
    """Return the position of the newest committed event (0 when the table is empty).

    Where positions commit out of order, the safe horizon: no row at or below it can still appear.
    """
    if not dialect.positions_commit_in_order:
        return horizon_of(engine).safe_position(engine)
    pos: Any = literal_column(dialect.position_column)
    with engine.connect() as conn:
        return int(conn.execute(select(pos).select_from(events).order_by(pos.desc()).limit(1)).scalar() or 0)


def position_before(engine: Engine, dialect: Dialect, timestamp_ms: int) -> int:
    """Return the position just below the first committed event stamped at or after `timestamp_ms`.

    committed_position() when there is none; never above it (PostgreSQL: the safe horizon).
    """
    top = committed_position(engine, dialect)
    # "+ 0" keeps SQLite from walking the rowids up from the oldest row (its min() shortcut): the
    # timestamp index then yields only the rows stamped since, few for a recent start.
    pos: Any = literal_column(f"{dialect.position_column} + 0")
    with engine.connect() as conn:
        first = conn.execute(select(func.min(pos)).select_from(events)
                             .where(events.c.timestamp >= int(timestamp_ms))).scalar()
    return top if first is None else min(top, int(first) - 1)


def read_committed(engine: Engine, dialect: Dialect, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
    """Return up to `limit` committed events with position > after, oldest first, with their positions."""
    if limit <= 0:
        return []
    pos: Any = literal_column(dialect.position_column)
    stmt = (select(pos, *(events.c[name] for name in EVENT_COLUMNS)).select_from(events)
            .where(pos > after).order_by(pos).limit(limit))
    if not dialect.positions_commit_in_order:
        # Never past a row that may still commit below it (another writer's transaction in flight).
        upper = horizon_of(engine).safe_position(engine)
        if upper <= after:
            return []
        stmt = stmt.where(pos <= upper)
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
    c = exporter_cursors.c
    with engine.connect() as conn:
        value = conn.execute(select(c.position).where(c.name == name)).scalar()
    return None if value is None else int(value)


def save_cursor(engine: Engine, dialect: Dialect, name: str, position: int) -> None:
    """Persist exporter `name`'s position in its own short transaction (insert or update)."""
    stmt = dialect.upsert_insert()(exporter_cursors).values(name=name, position=int(position), updated_at=now_ms())
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
        "position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at})
    with engine.begin() as conn:
        conn.execute(stmt)


def cursors(engine: Engine) -> dict[str, int]:
    """Return every persisted exporter position by name."""
    c = exporter_cursors.c
    with engine.connect() as conn:
        return {str(name): int(p) for name, p in conn.execute(select(c.name, c.position).order_by(c.name))}


def clamp_cursors(conn: Connection, dialect: Dialect) -> None:
    """Lower every cursor to the newest position after rows were deleted, where positions are reused.

    Called inside the deleting transaction, as the text-index watermark is clamped: new rows may take
    the deleted rows' rowids again and must not sit at or below a cursor.
    """
    if dialect.reuses_positions:
        conn.exec_driver_sql(CLAMP_SQL)


class ChangeLogMethods:
    """SQLStore's ChangeLog capability (store/base.py), delegating to the functions above (a mixin)."""

    sql: Dialect
    if TYPE_CHECKING:
        @property
        def engine(self) -> Engine:
            """The store's engine (SQLStore initialises on first use)."""

    def committed_position(self) -> int:
        """Return the position of the newest committed event (0 when there is none)."""
        return committed_position(self.engine, self.sql)

    def read_committed(self, after: int, limit: int) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` committed events with position > after, oldest first, with their positions."""
        return read_committed(self.engine, self.sql, after, limit)

    def position_before(self, timestamp_ms: int) -> int:
        """Return the position just below the first committed event stamped at or after `timestamp_ms`."""
        return position_before(self.engine, self.sql, timestamp_ms)

    def load_cursor(self, name: str) -> int | None:
        """Return exporter `name`'s persisted position, or None."""
        return load_cursor(self.engine, name)

    def save_cursor(self, name: str, position: int) -> None:
        """Persist exporter `name`'s position."""
        save_cursor(self.engine, self.sql, name, position)

    def cursors(self) -> dict[str, int]:
        """Return every persisted exporter position by name."""
        return cursors(self.engine)
