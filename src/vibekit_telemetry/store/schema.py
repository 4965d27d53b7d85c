"""The current schema as SQLAlchemy Core tables: what reads are built from (migrations own the DDL)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ._batch import ROLLUP_PERIODS, SESSION_ROLLUP_PERIODS

__all__ = ["EVENT_COLUMNS", "EVENT_INDEXES", "ROLLUP_PERIODS", "SESSION_ROLLUP_PERIODS", "audit_log", "event_ids",
           "events", "exporter_cursors", "metadata", "pg_metadata", "rollups", "session_rollups", "session_totals",
           "sessions", "store_meta", "totals_deltas", "writer_runs"]

metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("id", Text, primary_key=True),
    Column("category", Text),
    Column("action", Text),
    # active | completed | error | cancelled
    Column("status", String(16), nullable=False, server_default="active"),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("duration", Float),
    Column("event_count", Integer, nullable=False, server_default="0"),
    Column("stream_count", Integer, nullable=False, server_default="0"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("last_event_time", BigInteger),
    Column("label", Text),
    Column("sandbox_id", Text),
    Column("repo_url", Text),
    Column("metadata", Text),
    # Start-time ranges and sorts use ix_sessions_sort_start (start_time, id), migration 0013 (_ddl.py);
    # the single-column index migration 0001 made went in 0015.
    Index("ix_sessions_status", "status"),
    Index("ix_sessions_category", "category"),
)

# Column order of an events row: the write fast path builds tuples in exactly this order.
EVENT_COLUMNS: Final = (
    "event_id", "session_id", "event_type", "category", "action", "label", "value", "stream_data",
    "sandbox_id", "repo_url", "timestamp", "duration", "metadata", "context", "service_name",
    "service_version",
)

events = Table(
    "events", metadata,
    # UUIDv7 text: the idempotency key, so a replayed batch stores each event once.
    Column("event_id", Text, primary_key=True),
    Column("session_id", Text, ForeignKey("sessions.id", ondelete="CASCADE")),
    Column("event_type", String(16), nullable=False),
    Column("category", Text),
    Column("action", Text),
    Column("label", Text),
    Column("value", Float),
    Column("stream_data", Text),
    Column("sandbox_id", Text),
    Column("repo_url", Text),
    Column("timestamp", BigInteger, nullable=False),
    Column("duration", Float),
    Column("metadata", Text),
    Column("context", Text),
    Column("service_name", Text),
    Column("service_version", Text),
)

# Only the indexes queries need: a session's events in order, time ranges, one agent over time.
# Kept outside the Table so `enable_indexes=False` can drop them for ingest-only stores.
EVENT_INDEXES: Final = (
    Index("ix_events_session_ts", events.c.session_id, events.c.timestamp),
    Index("ix_events_timestamp", events.c.timestamp),
    Index("ix_events_category_ts", events.c.category, events.c.timestamp),
)


rollups = Table(
    "rollups", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("period", String(8), nullable=False),
    Column("bucket_start", BigInteger, nullable=False),
    # Empty string, not NULL, for a missing action: NULLs never conflict in a unique index.
    Column("category", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("count", Integer, nullable=False),
    Column("error_count", Integer, nullable=False),
    Column("duration_sum", Float, nullable=False),
    Column("duration_count", Integer, nullable=False),
    Column("duration_min", Float),
    Column("duration_max", Float),
    UniqueConstraint("period", "bucket_start", "category", "action", "event_type", name="uq_rollups_key"),
)

# Running totals per category (migration 0006), kept by the same batch plan as sessions and rollups:
# unfiltered stats read one row per agent instead of scanning sessions or grouping rollups.
session_totals = Table(
    "session_totals", metadata,
    # Empty string, not NULL, for events without a category (as in rollups).
    Column("category", Text, primary_key=True),
    Column("events", BigInteger, nullable=False, server_default="0"),
    Column("error_events", BigInteger, nullable=False, server_default="0"),
    Column("sessions", BigInteger, nullable=False, server_default="0"),
    Column("active_sessions", BigInteger, nullable=False, server_default="0"),
    # Sessions with an end_time, and the sum / count of their non-NULL durations (the average).
    Column("ended_sessions", BigInteger, nullable=False, server_default="0"),
    Column("duration_sum", Float, nullable=False, server_default="0"),
    Column("duration_count", BigInteger, nullable=False, server_default="0"),
)

# The session counters of session_totals per hour and day of the sessions' start time (migration 0008),
# kept by the same batch plan: time-filtered stats count the sessions started in whole hours and days
# from here, and only those of the partial hours at the edges from the sessions table.
session_rollups = Table(
    "session_rollups", metadata,
    Column("period", String(8), primary_key=True),  # hour | day
    Column("bucket_start", BigInteger, primary_key=True),
    Column("category", Text, primary_key=True),  # '' for sessions without a category
    Column("sessions", BigInteger, nullable=False, server_default="0"),
    Column("active_sessions", BigInteger, nullable=False, server_default="0"),
    Column("ended_sessions", BigInteger, nullable=False, server_default="0"),
    Column("duration_sum", Float, nullable=False, server_default="0"),
    Column("duration_count", BigInteger, nullable=False, server_default="0"),
)

# Small key/value state of the store itself (migration 0005): on SQLite the text-search watermark.
store_meta = Table(
    "store_meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", BigInteger),
)

# One row per Telemetry writer (migration 0007): its counters, upserted every writer_stats_interval_s,
# so `telemetry stats --performance` in another process can show how the writers are doing.
writer_runs = Table(
    "writer_runs", metadata,
    Column("run_id", Text, primary_key=True),
    Column("service_name", Text),
    Column("service_version", Text),
    Column("host", Text),
    Column("pid", Integer),
    Column("started_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("events_written", BigInteger, nullable=False, server_default="0"),
    Column("batches", BigInteger, nullable=False, server_default="0"),
    Column("total_batch_ms", Float, nullable=False, server_default="0"),
    Column("last_batch_ms", Float, nullable=False, server_default="0"),
    Column("max_batch_ms", Float, nullable=False, server_default="0"),
    Column("dropped", BigInteger, nullable=False, server_default="0"),
    Column("queue_depth", Integer, nullable=False, server_default="0"),
    Column("queue_capacity", Integer, nullable=False, server_default="0"),
    # Migration 0011: the writer's plugins as JSON (name, version, enabled, counts, disabled reason), so
    # `telemetry health --detailed` in another process can show them and list a disabled one as an issue.
    Column("plugins", Text),
    # Migration 0012: sessions the writer's `sample` step saw and kept (the kept fraction of get_stats).
    Column("sessions_seen", BigInteger, nullable=False, server_default="0"),
    Column("sessions_kept", BigInteger, nullable=False, server_default="0"),
    Index("ix_writer_runs_updated_at", "updated_at"),
)

# Where each exporter following the store has got to (migration 0009): every event at or below
# `position` (SQLite: events.rowid, PostgreSQL: events.seq, see store/changelog.py) was delivered.
exporter_cursors = Table(
    "exporter_cursors", metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("timestamp", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text),
    Column("details", Text),
    # Migration 0010: the record an entry is about, its old/new values, and the hash chain.
    Column("table_name", Text),
    Column("record_id", Text),
    Column("old_values", Text),
    Column("new_values", Text),
    Column("prev_hash", Text),
    Column("hash", Text),
    Index("ix_audit_log_timestamp", "timestamp"),
    Index("ix_audit_log_record", "table_name", "record_id"),
)

# What migration 0003 creates: the FTS5 table (SQLite) or trigram GIN indexes (PostgreSQL).
FTS_TABLE: Final = "events_fts"
# store_meta key: every events row with rowid <= this value is in events_fts (migration 0005).
FTS_WATERMARK: Final = "fts_indexed_rowid"
PG_TRGM_INDEXES: Final = ("ix_events_label_trgm", "ix_events_stream_data_trgm")

# PostgreSQL only (migration 0014, DDL in store/sql/partitions.py, so not in `metadata`): events is
# partitioned by time there and its key is (event_id, timestamp); event_ids keeps event_id unique
# across partitions, and writers add their category totals to their own totals_deltas rows.
pg_metadata = MetaData()

event_ids = Table(
    "event_ids", pg_metadata,
    Column("event_id", Text, primary_key=True),
    Column("timestamp", BigInteger, nullable=False),
)

totals_deltas = Table(
    "totals_deltas", pg_metadata,
    Column("writer_id", Text, primary_key=True),  # one store instance (host, pid, random)
    Column("category", Text, primary_key=True),
    *(Column(c.name, c.type, nullable=False, server_default="0")
      for c in session_totals.c if c.name != "category"),
)
