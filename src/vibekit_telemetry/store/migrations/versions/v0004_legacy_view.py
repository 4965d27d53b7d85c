"""The `telemetry` view: seed 003's flat legacy table, so its SQL examples keep working.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Unquoted aliases: SQLite matches them case-insensitively and PostgreSQL folds both the alias and an
# unquoted `agentType` in a query to lower case, so `SELECT agentType FROM telemetry` works on both.
_VIEW = """
CREATE VIEW telemetry AS
SELECT event_id AS id, session_id AS sessionId, event_type AS eventType, category AS agentType,
       action AS mode, label AS prompt, stream_data AS streamData, sandbox_id AS sandboxId,
       repo_url AS repoUrl, metadata, timestamp
FROM events
"""


def upgrade() -> None:
    """Create the read-only legacy view over events."""
    op.execute(_VIEW)


def downgrade() -> None:
    """Drop the legacy view."""
    op.execute("DROP VIEW IF EXISTS telemetry")
