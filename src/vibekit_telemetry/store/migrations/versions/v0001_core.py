"""Core tables: sessions, events, audit_log.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create sessions, events and audit_log with the indexes reads need."""
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("category", sa.Text),
        sa.Column("action", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("start_time", sa.BigInteger, nullable=False),
        sa.Column("end_time", sa.BigInteger),
        sa.Column("duration", sa.Float),
        sa.Column("event_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("stream_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_event_time", sa.BigInteger),
        sa.Column("label", sa.Text),
        sa.Column("sandbox_id", sa.Text),
        sa.Column("repo_url", sa.Text),
        sa.Column("metadata", sa.Text),
    )
    op.create_index("ix_sessions_start_time", "sessions", ["start_time"])
    op.create_index("ix_sessions_status", "sessions", ["status"])
    op.create_index("ix_sessions_category", "sessions", ["category"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id", ondelete="CASCADE")),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("action", sa.Text),
        sa.Column("label", sa.Text),
        sa.Column("value", sa.Float),
        sa.Column("stream_data", sa.Text),
        sa.Column("sandbox_id", sa.Text),
        sa.Column("repo_url", sa.Text),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("duration", sa.Float),
        sa.Column("metadata", sa.Text),
        sa.Column("context", sa.Text),
        sa.Column("service_name", sa.Text),
        sa.Column("service_version", sa.Text),
    )
    op.create_index("ix_events_session_ts", "events", ["session_id", "timestamp"])
    op.create_index("ix_events_timestamp", "events", ["timestamp"])
    op.create_index("ix_events_category_ts", "events", ["category", "timestamp"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("details", sa.Text),
    )
    op.create_index("ix_audit_log_timestamp", "audit_log", ["timestamp"])


def downgrade() -> None:
    """Drop the core tables (and every event in them)."""
    op.drop_table("audit_log")
    op.drop_table("events")
    op.drop_table("sessions")
