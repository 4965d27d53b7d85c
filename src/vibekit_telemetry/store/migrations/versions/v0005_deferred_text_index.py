"""Deferred, bulk text indexing on SQLite: no FTS insert trigger, a watermark in store_meta.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Maintaining the FTS5 trigram index row by row from an AFTER INSERT trigger cost ingest 3-6x (26k
rows/s against 140k rows/s when the same rows are indexed in bulk afterwards). From this version the
store inserts events without touching events_fts and indexes them in chunks later (SQLStore.index_text);
`store_meta.fts_indexed_rowid` says how far: every events row with rowid <= it is in the index.
Text search matches the index up to the watermark and scans the short tail above it, so results
are exact at any moment. Deletes and updates keep the index in step only for indexed rows.

PostgreSQL keeps its pg_trgm GIN indexes (maintained by the server); it gets the store_meta table only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_WATERMARK = "(SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid')"
_SQLITE_UP = (
    "DROP TRIGGER IF EXISTS events_fts_ai",
    "DROP TRIGGER IF EXISTS events_fts_ad",
    "DROP TRIGGER IF EXISTS events_fts_au",
    "CREATE TRIGGER events_fts_ad AFTER DELETE ON events "
    "WHEN (old.label IS NOT NULL OR old.stream_data IS NOT NULL) "
    f"AND old.rowid <= {_WATERMARK} BEGIN "
    "INSERT INTO events_fts(events_fts, rowid, label, stream_data) "
    "VALUES ('delete', old.rowid, old.label, old.stream_data); END",
    "CREATE TRIGGER events_fts_au AFTER UPDATE OF label, stream_data ON events "
    f"WHEN old.rowid <= {_WATERMARK} BEGIN "
    "INSERT INTO events_fts(events_fts, rowid, label, stream_data) "
    "SELECT 'delete', old.rowid, old.label, old.stream_data "
    "WHERE old.label IS NOT NULL OR old.stream_data IS NOT NULL; "
    "INSERT INTO events_fts(rowid, label, stream_data) SELECT new.rowid, new.label, new.stream_data "
    "WHERE new.label IS NOT NULL OR new.stream_data IS NOT NULL; END",
    # Up to 0004 the insert trigger kept the index complete: everything stored so far is indexed.
    "INSERT INTO store_meta (key, value) SELECT 'fts_indexed_rowid', COALESCE(MAX(rowid), 0) FROM events",
)
# 0003's triggers, restored after the tail above the watermark has been indexed.
_SQLITE_DOWN = (
    "INSERT INTO events_fts(rowid, label, stream_data) SELECT rowid, label, stream_data FROM events "
    f"WHERE rowid > COALESCE({_WATERMARK}, 0) AND (label IS NOT NULL OR stream_data IS NOT NULL)",
    "DROP TRIGGER IF EXISTS events_fts_au",
    "DROP TRIGGER IF EXISTS events_fts_ad",
    "CREATE TRIGGER events_fts_ai AFTER INSERT ON events "
    "WHEN new.label IS NOT NULL OR new.stream_data IS NOT NULL BEGIN "
    "INSERT INTO events_fts(rowid, label, stream_data) VALUES (new.rowid, new.label, new.stream_data); END",
    "CREATE TRIGGER events_fts_ad AFTER DELETE ON events "
    "WHEN old.label IS NOT NULL OR old.stream_data IS NOT NULL BEGIN "
    "INSERT INTO events_fts(events_fts, rowid, label, stream_data) "
    "VALUES ('delete', old.rowid, old.label, old.stream_data); END",
    "CREATE TRIGGER events_fts_au AFTER UPDATE OF label, stream_data ON events BEGIN "
    "INSERT INTO events_fts(events_fts, rowid, label, stream_data) "
    "SELECT 'delete', old.rowid, old.label, old.stream_data "
    "WHERE old.label IS NOT NULL OR old.stream_data IS NOT NULL; "
    "INSERT INTO events_fts(rowid, label, stream_data) SELECT new.rowid, new.label, new.stream_data "
    "WHERE new.label IS NOT NULL OR new.stream_data IS NOT NULL; END",
)


def _has_fts() -> bool:
    return op.get_bind().exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE name = 'events_fts'").first() is not None


def upgrade() -> None:
    """Create store_meta; on SQLite with FTS swap the insert trigger for the watermark."""
    op.create_table(
        "store_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger),
    )
    if op.get_bind().dialect.name == "sqlite" and _has_fts():
        for statement in _SQLITE_UP:
            op.execute(statement)


def downgrade() -> None:
    """Index what is not indexed yet, restore 0003's triggers and drop store_meta."""
    if op.get_bind().dialect.name == "sqlite" and _has_fts():
        for statement in _SQLITE_DOWN:
            op.execute(statement)
    op.drop_table("store_meta")
