"""Writer metrics in the store: one writer_runs row per Telemetry writer, readable from any process.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

`telemetry stats --performance` runs in its own process, whose writer has written nothing; each
writer now upserts its counters (events written, batches and their times, drops, queue depth) here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create writer_runs and its updated_at index."""
    op.create_table(
        "writer_runs",
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
    )
    op.create_index("ix_writer_runs_updated_at", "writer_runs", ["updated_at"])


def downgrade() -> None:
    """Drop writer_runs."""
    op.drop_index("ix_writer_runs_updated_at", table_name="writer_runs")
    op.drop_table("writer_runs")
