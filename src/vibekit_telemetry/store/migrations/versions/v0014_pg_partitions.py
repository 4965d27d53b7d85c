"""PostgreSQL at scale: events partitioned by time, ids kept unique in event_ids, metadata GIN, totals deltas.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

PostgreSQL only (SQLite is unchanged). The plain events table is renamed aside, a table partitioned by
RANGE (timestamp) with a DEFAULT partition takes its name, day partitions are made for the days that
hold rows (the newest 1000; older rows go to the default partition), the rows are copied with their
change-log positions (seq) and the identity counter carried over, and the old table is dropped. New
tables: event_ids (global idempotency by event_id, see store/sql/partitions.py) and totals_deltas
(per-writer category totals folded by the scheduler). The metadata GIN index is an expression index
on the jsonb of the text column. Downgrade folds the deltas and copies the rows back into a plain table.

The DDL lives in store/sql/partitions.py, shared with databases created at the head; if it ever
changes, freeze this revision's copy here first.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Partition events on PostgreSQL (rows, positions and indexes kept)."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        return
    from vibekit_telemetry.store.sql.partitions import partition_events

    partition_events(conn)


def downgrade() -> None:
    """Back to a plain events table keyed by event_id (PostgreSQL)."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        return
    from vibekit_telemetry.store.sql.partitions import unpartition_events

    unpartition_events(conn)
