"""Session counters per hour and day of start time, so time-filtered stats read buckets, not sessions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

`get_stats(since=...)` counted every session started in the window (sessions, active, durations)
through the start_time index: ~105k rows for 7 days at 10M events. session_rollups holds the
session_totals counters per (period, bucket_start, category), bucketed by the session's start time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_HOUR, _DAY = 3_600_000, 86_400_000
_COUNTERS = "sessions, active_sessions, ended_sessions, duration_sum, duration_count"


def upgrade() -> None:
    """Create session_rollups; backfill hour buckets from the sessions and day buckets from the hours."""
    op.create_table(
        "session_rollups",
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("bucket_start", sa.BigInteger, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        sa.Column("sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("active_sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("ended_sessions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("duration_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("duration_count", sa.BigInteger, nullable=False, server_default="0"),
    )
    # The same counting rules as session_totals (0006): ended = has an end_time, durations of ended ones.
    op.execute(
        f"INSERT INTO session_rollups (period, bucket_start, category, {_COUNTERS}) "
        f"SELECT 'hour', (start_time / {_HOUR}) * {_HOUR}, COALESCE(category, ''), COUNT(*), "
        "SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), COUNT(end_time), "
        "COALESCE(SUM(CASE WHEN end_time IS NOT NULL THEN duration END), 0), "
        "COUNT(CASE WHEN end_time IS NOT NULL THEN duration END) FROM sessions "
        f"GROUP BY (start_time / {_HOUR}) * {_HOUR}, COALESCE(category, '')")
    op.execute(
        f"INSERT INTO session_rollups (period, bucket_start, category, {_COUNTERS}) "
        f"SELECT 'day', (bucket_start / {_DAY}) * {_DAY}, category, SUM(sessions), SUM(active_sessions), "
        "SUM(ended_sessions), SUM(duration_sum), SUM(duration_count) FROM session_rollups "
        f"WHERE period = 'hour' GROUP BY (bucket_start / {_DAY}) * {_DAY}, category")


def downgrade() -> None:
    """Drop session_rollups."""
    op.drop_table("session_rollups")
