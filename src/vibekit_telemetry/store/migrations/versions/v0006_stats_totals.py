"""Day rollups and per-category running totals, so stats read a handful of rows at any size.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DAY = 86_400_000


def upgrade() -> None:
    """Create session_totals; backfill day rollups from hour rollups and the totals from both tables."""
    op.create_table(
        "session_totals",
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error_events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("active_sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("ended_sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duration_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("duration_count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO rollups (period, bucket_start, category, action, event_type, count, error_count, "
        "duration_sum, duration_count, duration_min, duration_max) "
        f"SELECT 'day', (bucket_start / {_DAY}) * {_DAY}, category, action, event_type, SUM(count), "
        "SUM(error_count), SUM(duration_sum), SUM(duration_count), MIN(duration_min), MAX(duration_max) "
        f"FROM rollups WHERE period = 'hour' GROUP BY (bucket_start / {_DAY}) * {_DAY}, category, action, "
        "event_type")
    op.execute(
        "INSERT INTO session_totals (category, events, error_events) "
        "SELECT category, SUM(count), SUM(error_count) FROM rollups WHERE period = 'hour' GROUP BY category")
    op.execute(
        "INSERT INTO session_totals (category, sessions, active_sessions, ended_sessions, duration_sum, "
        "duration_count) "
        "SELECT COALESCE(category, ''), COUNT(*), SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), "
        "COUNT(end_time), COALESCE(SUM(CASE WHEN end_time IS NOT NULL THEN duration END), 0), "
        "COUNT(CASE WHEN end_time IS NOT NULL THEN duration END) FROM sessions WHERE 1 = 1 "
        "GROUP BY COALESCE(category, '') "
        "ON CONFLICT (category) DO UPDATE SET sessions = excluded.sessions, "
        "active_sessions = excluded.active_sessions, ended_sessions = excluded.ended_sessions, "
        "duration_sum = excluded.duration_sum, duration_count = excluded.duration_count")


def downgrade() -> None:
    """Drop the totals and the day rollups."""
    op.execute("DELETE FROM rollups WHERE period = 'day'")
    op.drop_table("session_totals")
