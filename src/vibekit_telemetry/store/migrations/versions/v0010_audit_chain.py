"""Tamper-evident audit trail: each entry chained by hash to the previous one; per-record history.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29

audit_log gains the record an entry is about (table_name, record_id), its old and new values
(JSON), and prev_hash / hash: hash = sha256(prev_hash | the entry's canonical JSON), so editing or
deleting any entry breaks every later link (`telemetry db audit --verify`). Existing entries are
chained in id order by the store the first time it appends (store/audit.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = ("table_name", "record_id", "old_values", "new_values", "prev_hash", "hash")


def _frozen_table() -> sa.Table:
    """audit_log as this revision leaves it (frozen here, as every migration's DDL)."""
    return sa.Table(
        "audit_log", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("details", sa.Text),
        *(sa.Column(name, sa.Text) for name in _COLUMNS),
    )


def upgrade() -> None:
    """Add the record, value and hash-chain columns to audit_log."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Rebuilt rather than ALTERed, so SQLite keeps the same CREATE TABLE text as a database
        # created at the head (ALTER TABLE ADD COLUMN appends to the stored text instead).
        op.execute("ALTER TABLE audit_log RENAME TO _audit_log_0009")
        op.execute("DROP INDEX IF EXISTS ix_audit_log_timestamp")
        _frozen_table().create(bind)
        op.execute("INSERT INTO audit_log (id, timestamp, actor, action, target, details) "
                   "SELECT id, timestamp, actor, action, target, details FROM _audit_log_0009")
        op.execute("DROP TABLE _audit_log_0009")
        op.create_index("ix_audit_log_timestamp", "audit_log", ["timestamp"])
    else:
        for name in _COLUMNS:
            op.add_column("audit_log", sa.Column(name, sa.Text))
    op.create_index("ix_audit_log_record", "audit_log", ["table_name", "record_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_audit_log_record", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
