"""Sessions sorted by start time, duration, event count or error count: one index per sort key (Sessions page).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Each index holds the key, then start_time and id, the tie-breakers of a sorted listing
(store/sql/read.py session_order), so any page of 100,000+ sorted sessions is an index walk instead
of a sort of the whole table. A running session has no duration and sorts below every duration:
SQLite keeps NULL lowest already; on PostgreSQL the duration index says NULLS FIRST so that both
directions walk it (forwards ascending, backwards descending).
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Frozen here (as every migration's DDL); store/_ddl.py repeats it for databases created at the head.
SESSION_SORT_INDEXES = (
    ("ix_sessions_sort_duration", "duration{nulls}, start_time, id"),
    ("ix_sessions_sort_events", "event_count, start_time, id"),
    ("ix_sessions_sort_errors", "error_count, start_time, id"),
    # The default order (newest first): ix_sessions_start_time alone leaves id to a sort of every row
    # skipped by a deep page's OFFSET.
    ("ix_sessions_sort_start", "start_time, id"),
)


def upgrade() -> None:
    """Create the four sort indexes on sessions."""
    nulls = "" if op.get_bind().dialect.name == "sqlite" else " NULLS FIRST"
    for name, columns in SESSION_SORT_INDEXES:
        op.execute(f"CREATE INDEX {name} ON sessions ({columns.format(nulls=nulls)})")


def downgrade() -> None:
    """Drop the sort indexes."""
    for name, _ in SESSION_SORT_INDEXES:
        op.execute(f"DROP INDEX {name}")
