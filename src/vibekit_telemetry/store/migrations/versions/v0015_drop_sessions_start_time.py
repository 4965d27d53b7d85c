"""Drop ix_sessions_start_time: ix_sessions_sort_start (start_time, id) of migration 0013 serves everything it did.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

A start-time range (`since`/`until` of a sessions listing, the partial hours of stats and breakdowns)
seeks the composite index on its first column exactly as it did the single-column one, and a listing
sorted by start time walks it in (start_time, id) order without a sort. One index fewer for every
session a batch starts or updates; tests/store/test_session_indexes.py checks the plans on both dialects.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the single-column start-time index of migration 0001."""
    op.execute("DROP INDEX ix_sessions_start_time")


def downgrade() -> None:
    """Create it again as migration 0001 did."""
    op.execute("CREATE INDEX ix_sessions_start_time ON sessions (start_time)")
