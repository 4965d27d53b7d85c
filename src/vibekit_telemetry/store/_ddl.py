"""The schema objects Core metadata cannot express, as they stand at the head version.

Used when a store creates an empty database directly at the head (migrate.create_at_head) instead
of replaying every migration. A test checks that the result equals a database migrated from 0001.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection

from .schema import FTS_WATERMARK

_WATERMARK: Final = "(SELECT value FROM store_meta WHERE key = 'fts_indexed_rowid')"

# Migration 0003's FTS5 table and 0005's triggers (no insert trigger: indexing is deferred).
SQLITE_FTS: Final = (
    "CREATE VIRTUAL TABLE events_fts USING fts5(label, stream_data, content='events', "
    "content_rowid='rowid', tokenize='trigram', columnsize=0)",
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
    "INSERT INTO events_fts(events_fts, rank) VALUES ('automerge', 16)",
    f"INSERT INTO store_meta (key, value) VALUES ('{FTS_WATERMARK}', 0)",
)

# Migration 0004's legacy view, verbatim (SQLite keeps the statement text in sqlite_master).
LEGACY_VIEW: Final = """
CREATE VIEW telemetry AS
SELECT event_id AS id, session_id AS sessionId, event_type AS eventType, category AS agentType,
       action AS mode, label AS prompt, stream_data AS streamData, sandbox_id AS sandboxId,
       repo_url AS repoUrl, metadata, timestamp
FROM events
"""


def sqlite_has_trigram(conn: Connection) -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer."""
    raw: Any = conn.connection.driver_connection
    try:
        raw.execute("CREATE VIRTUAL TABLE temp._vk_probe USING fts5(x, tokenize='trigram')")
    except Exception:  # any failure means no FTS5 or no trigram tokenizer
        return False
    raw.execute("DROP TABLE temp._vk_probe")
    return True


def create_text_search(conn: Connection) -> None:
    """Migration 0003/0005's text search at the head: FTS5 trigram or pg_trgm GIN indexes, if available."""
    if conn.dialect.name == "sqlite":
        if sqlite_has_trigram(conn):
            for statement in SQLITE_FTS:
                conn.exec_driver_sql(statement)
        return
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception:  # no permission or extension not installed: fall back to ILIKE
        savepoint.rollback()
        return
    savepoint.commit()
    schema = conn.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'").scalar_one()
    opclass = f'"{schema}".gin_trgm_ops'
    conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS ix_events_label_trgm ON events USING gin (label {opclass})")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_events_stream_data_trgm ON events "
                         f"USING gin (stream_data {opclass})")
