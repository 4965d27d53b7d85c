"""Sampling in writer metrics: the sessions each writer's `sample` step saw and kept (issue 13).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

`telemetry stats` and `GET /api/stats` read the kept fraction from these counters, so counts stored
under `sample_rate` can be scaled by 1 / kept_fraction from any process, not only the writer's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


_COUNTERS = ("events_written", "batches", "total_batch_ms", "last_batch_ms", "max_batch_ms", "dropped",
             "queue_depth", "queue_capacity")
_KINDS = {"total_batch_ms": sa.Float, "last_batch_ms": sa.Float, "max_batch_ms": sa.Float,
          "queue_depth": sa.Integer, "queue_capacity": sa.Integer}
_NEW = ("sessions_seen", "sessions_kept")


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
        *(sa.Column(name, _KINDS.get(name, sa.BigInteger), nullable=False, server_default="0")
          for name in _COUNTERS),
        sa.Column("plugins", sa.Text),  # migration 0011
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _NEW),
    )


def upgrade() -> None:
    """Add writer_runs.sessions_seen and sessions_kept (0 for runs recorded before)."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Rebuilt rather than ALTERed, so SQLite keeps the same CREATE TABLE text as a database
        # created at the head (ALTER TABLE ADD COLUMN appends to the stored text instead).
        old = ", ".join(("run_id", "service_name", "service_version", "host", "pid", "started_at", "updated_at",
                         *_COUNTERS, "plugins"))
        op.execute("ALTER TABLE writer_runs RENAME TO _writer_runs_0011")
        op.execute("DROP INDEX IF EXISTS ix_writer_runs_updated_at")
        _frozen_table().create(bind)
        op.execute(f"INSERT INTO writer_runs ({old}) SELECT {old} FROM _writer_runs_0011")
        op.execute("DROP TABLE _writer_runs_0011")
        op.create_index("ix_writer_runs_updated_at", "writer_runs", ["updated_at"])
    else:
        for name in _NEW:
            op.add_column("writer_runs", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("writer_runs") as batch:
        for name in reversed(_NEW):
            batch.drop_column(name)
