"""Legacy migration: the flat `telemetry` table of seed 003 and the `telemetry_events` table of seed 002.

Fields are mapped as seed 000 §12.1 does (agentType -> category, mode -> action, prompt -> label),
with streamData, sandboxId and repoUrl kept in their own fields. Rows enter the one chain through the
importer, so sessions are rebuilt by the store as the events arrive. Each row gets an id derived from
its table, row id, session and time, so a second run adds nothing: an interrupted migration is
resumed by running it again (each chunk is committed before the next is read; done ones are skipped).
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..events import MIN_TIMESTAMP_MS
from .importer import ImportReport, Progress, import_records
from .readers import Record

if TYPE_CHECKING:
    from ..runtime import Runtime

_NAMESPACE: Final = uuid.UUID("0b8f5a3e-6c1d-4a57-9e0f-2d4c6b8a1f30")
_PAGE: Final = 5000
# Each legacy schema: its table, and its column for each event field.
SCHEMAS: Final = {
    "telemetry": {"session_id": "sessionId", "event_type": "eventType", "category": "agentType",
                  "action": "mode", "label": "prompt", "stream_data": "streamData", "sandbox_id": "sandboxId",
                  "repo_url": "repoUrl", "metadata": "metadata", "timestamp": "timestamp"},
    "telemetry_events": {"session_id": "session_id", "event_type": "event_type", "category": "agent_type",
                         "action": "mode", "label": "prompt", "stream_data": "stream_data",
                         "sandbox_id": "sandbox_id", "repo_url": "repo_url", "metadata": "metadata",
                         "timestamp": "timestamp"},
}


def _connect(path: str) -> sqlite3.Connection:
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValidationError("from", "an existing SQLite database file", path)
    try:
        conn = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise ValidationError("from", f"a SQLite database ({exc})", path) from None
    return conn


def detect_table(path: str) -> str:
    """Return which legacy table the database holds (telemetry or telemetry_events)."""
    conn = _connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    for table in SCHEMAS:
        if table in tables:
            return table
    raise ValidationError("from", "a database with a legacy `telemetry` (seed 003) or `telemetry_events` "
                          "(seed 002) table", path)


def _timestamp(value: Any) -> Any:
    # Legacy rows sometimes hold seconds (REAL in seed 002): taken as such when plainly not milliseconds.
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < MIN_TIMESTAMP_MS:
        return round(value * 1000)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _metadata(text: Any) -> Any:
    if text is None or text == "":
        return None
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            return {"legacy_metadata": text}
        return value if isinstance(value, dict) else {"legacy_metadata": value}
    return text


def legacy_rows(path: str, table: str, after: int = 0) -> Iterator[Record]:
    """Yield (place, event dict) for each legacy row with id > after, in id order, a page at a time."""
    columns = SCHEMAS[table]
    conn = _connect(path)
    try:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in ("id", *columns.values()) if c not in present and c != "metadata"]
        if missing:
            raise ValidationError("from", f"a `{table}` table with the columns " + ", ".join(missing), path)
        names = [name for name, column in columns.items() if column in present]
        select = ", ".join(["id", *(columns[name] for name in names)])
        last = after
        while True:
            page = conn.execute(f"SELECT {select} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                                (last, _PAGE)).fetchall()
            for row in page:
                record = {name: value for name, value in zip(names, row[1:], strict=True) if value is not None}
                record["timestamp"] = _timestamp(record.get("timestamp"))
                record["metadata"] = _metadata(record.get("metadata"))
                record = {k: v for k, v in record.items() if v is not None}
                record["event_id"] = str(uuid.uuid5(_NAMESPACE, f"{table}:{row[0]}:{record.get('session_id')}:"
                                                                f"{record.get('timestamp')}"))
                yield f"{table} id {row[0]}", record
            if len(page) < _PAGE:
                return
            last = page[-1][0]
    finally:
        conn.close()


def migrate_legacy(runtime: Runtime, path: str, *, skip_invalid: bool = True,
                   progress: Progress | None = None) -> ImportReport:
    """Import a legacy database into the store; idempotent, so an interrupted run is resumed by running it again."""
    table = detect_table(path)

    def rows() -> Iterator[Record]:
        return legacy_rows(path, table)

    return import_records(runtime, path, rows, skip_invalid=skip_invalid, progress=progress,
                          report=ImportReport(format=f"legacy:{table}"))
