"""Each writer's plugins in writer_runs, for `telemetry health --detailed` in another process (issue 15).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

writer_runs.plugins holds the writer's plugins as JSON text: name, version, enabled, calls, errors,
timeouts and why a plugin was disabled. NULL for writers without plugins and for rows written before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_KEPT = ("run_id", "service_name", "service_version", "host", "pid", "started_at", "updated_at", "events_written",
         "batches", "total_batch_ms", "last_batch_ms", "max_batch_ms", "dropped", "queue_depth", "queue_capacity")


def _frozen_table() -> sa.Table:
    """writer_runs as this revision leaves it (frozen here, as every migration's DDL)."""
    return sa.Table(
        "writer_runs", sa.MetaData(),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("service_name", sa.Text),
        sa.Column("service_version", sa.Text),
        sa.Column("host", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("events_written", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("batches", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_batch_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("last_batch_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("max_batch_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("dropped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("queue_depth", sa.Integer, nullable=False, server_default="0"),
        sa.Column("queue_capacity", sa.Integer, nullable=False, server_default="0"),
        sa.Column("plugins", sa.Text),
    )


def upgrade() -> None:
    """Add writer_runs.plugins."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Rebuilt rather than ALTERed, so SQLite keeps the same CREATE TABLE text as a database
        # created at the head (ALTER TABLE ADD COLUMN appends to the stored text instead).
        columns = ", ".join(_KEPT)
        op.execute("ALTER TABLE writer_runs RENAME TO _writer_runs_0010")
        op.execute("DROP INDEX IF EXISTS ix_writer_runs_updated_at")
        _frozen_table().create(bind)
        op.execute(f"INSERT INTO writer_runs ({columns}) SELECT {columns} FROM _writer_runs_0010")
        op.execute("DROP TABLE _writer_runs_0010")
        op.create_index("ix_writer_runs_updated_at", "writer_runs", ["updated_at"])
    else:
        op.add_column("writer_runs", sa.Column("plugins", sa.Text))


def downgrade() -> None:
    """Drop writer_runs.plugins."""
    with op.batch_alter_table("writer_runs") as batch:
        batch.drop_column("plugins")
