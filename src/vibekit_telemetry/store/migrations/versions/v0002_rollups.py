"""Per-minute and per-hour rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MINUTE, _HOUR = 60_000, 3_600_000


def upgrade() -> None:
    """Create the rollups table and fill it from the events already stored."""
    op.create_table(
        "rollups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("bucket_start", sa.BigInteger, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("duration_sum", sa.Float, nullable=False),
        sa.Column("duration_count", sa.Integer, nullable=False),
        sa.Column("duration_min", sa.Float),
        sa.Column("duration_max", sa.Float),
        sa.UniqueConstraint("period", "bucket_start", "category", "action", "event_type",
                            name="uq_rollups_key"),
    )
    # Backfill so a store upgraded from 0001 reports the same stats as one that always had rollups.
    for period, size in (("minute", _MINUTE), ("hour", _HOUR)):
        op.execute(
            "INSERT INTO rollups (period, bucket_start, category, action, event_type, count, error_count, "
            "duration_sum, duration_count, duration_min, duration_max) "
            f"SELECT '{period}', (timestamp / {size}) * {size}, COALESCE(category, ''), "
            "COALESCE(action, ''), event_type, COUNT(*), "
            "SUM(CASE WHEN event_type = 'error' THEN 1 ELSE 0 END), COALESCE(SUM(duration), 0), "
            "COUNT(duration), MIN(duration), MAX(duration) FROM events "
            f"GROUP BY (timestamp / {size}) * {size}, COALESCE(category, ''), COALESCE(action, ''), "
            "event_type"
        )


def downgrade() -> None:
    """Drop the rollups table."""
    op.drop_table("rollups")
