"""SQLStore's audit trail: chained appends (one writer at a time), filtered reads, history, verification."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select, update

from ...events import now_ms
from .. import audit
from ..schema import audit_log

if TYPE_CHECKING:
    from .dialect import Dialect

_CHUNK = 5000


def append(store: AuditMethods, actor: str, action: str, target: str | None, details: Any, *, table: str | None,
           record_id: str | None, old_values: Any, new_values: Any) -> None:
    """Append one entry chained to the newest, in one write transaction holding the append lock."""
    c = audit_log.c
    with store.maintenance_transaction() as conn:
        store.sql.lock_for_append(conn, "audit_log")
        prev = conn.execute(select(c.hash).where(c.hash.is_not(None)).order_by(c.id.desc()).limit(1)).scalar()
        row: dict[str, Any] = {"timestamp": now_ms(), "actor": actor, "action": action, "target": target,
                               "details": audit.dumps(details), "table_name": table, "record_id": record_id,
                               "old_values": audit.dumps(old_values), "new_values": audit.dumps(new_values),
                               "prev_hash": prev or audit.GENESIS}
        new_id = conn.execute(insert(audit_log).values(**row).returning(c.id)).scalar_one()
        row["id"] = new_id
        conn.execute(update(audit_log).where(c.id == new_id).values(hash=audit.entry_hash(row["prev_hash"], row)))


def entries(store: AuditMethods, limit: int | None, *, table: str | None = None, since: int | None = None,
            action: str | None = None, record_id: str | None = None,
            oldest_first: bool = False) -> list[dict[str, Any]]:
    """Return decoded entries matching the filters."""
    c = audit_log.c
    stmt = select(audit_log)
    if table is not None:
        stmt = stmt.where(c.table_name == table)
    if record_id is not None:
        stmt = stmt.where(c.record_id == record_id)
    if since is not None:
        stmt = stmt.where(c.timestamp >= since)
    if action is not None:
        stmt = stmt.where(c.action == action)
    stmt = stmt.order_by(c.id if oldest_first else c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with store.engine.connect() as conn:
        return [audit.decoded(dict(row._mapping)) for row in conn.execute(stmt)]


def verify(store: AuditMethods) -> list[str]:
    """Walk the whole chain in id order, a chunk at a time."""
    c = audit_log.c

    def rows() -> Any:
        last = 0
        while True:
            with store.engine.connect() as conn:
                page = [dict(r._mapping) for r in conn.execute(
                    select(audit_log).where(c.id > last).order_by(c.id).limit(_CHUNK))]
            if not page:
                return
            yield from page
            last = page[-1]["id"]

    return audit.verify(rows())


class AuditMethods:
    """SQLStore's Auditable capability (store/base.py), delegating to the functions above (a mixin)."""

    if TYPE_CHECKING:
        sql: Dialect

        @property
        def engine(self) -> Engine:
            """The store's engine (SQLStore initialises on first use)."""

        def maintenance_transaction(self) -> AbstractContextManager[Connection]:
            """A Core connection in one write transaction, serialised with the writer."""

    def record_audit(self, actor: str, action: str, target: str | None = None,
                     details: dict[str, Any] | None = None, *, table: str | None = None,
                     record_id: str | None = None, old_values: dict[str, Any] | None = None,
                     new_values: dict[str, Any] | None = None) -> None:
        """Append one audit entry (who did what to which record, old and new values), chained by hash."""
        append(self, actor, action, target, details, table=table, record_id=record_id,
               old_values=old_values, new_values=new_values)

    def audit_log(self, limit: int = 100, *, table: str | None = None, since: int | None = None,
                  action: str | None = None) -> list[dict[str, Any]]:
        """Return the newest audit entries first (of one table, action, or since a time, when given)."""
        return entries(self, limit, table=table, since=since, action=action)

    def audit_history(self, table: str, record_id: str) -> list[dict[str, Any]]:
        """Return one record's audit entries oldest first, with old/new values and changed_fields."""
        return entries(self, None, table=table, record_id=record_id, oldest_first=True)

    def verify_audit(self) -> list[str]:
        """Return where the audit hash chain is broken ([] when intact)."""
        return verify(self)
