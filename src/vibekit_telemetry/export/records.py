"""Events and sessions as flat records: the columns every export format shares, and their types."""

from __future__ import annotations

import json
import uuid
from typing import Any, Final

from ..events import PUBLIC_FIELDS, TelemetryEvent
from ..store.base import Session

SCHEMA_VERSION: Final = 1
EVENT_COLUMNS: Final = PUBLIC_FIELDS
# Columns holding JSON objects: nested in JSON/NDJSON, JSON text in CSV and Parquet.
JSON_COLUMNS: Final = frozenset({"metadata", "context"})
INT_COLUMNS: Final = frozenset({"timestamp"})
FLOAT_COLUMNS: Final = frozenset({"value", "duration"})
SESSION_COLUMNS: Final = ("id", "category", "action", "status", "start_time", "end_time", "duration",
                          "event_count", "stream_count", "error_count", "last_event_time", "label",
                          "sandbox_id", "repo_url", "metadata")
SESSION_INT_COLUMNS: Final = frozenset({"start_time", "end_time", "event_count", "stream_count", "error_count",
                                        "last_event_time"})
# Ids given to imported records that have none, derived from their content: importing the same
# file twice then adds nothing (idempotent by event_id), however the ids were missing.
_IMPORT_NAMESPACE: Final = uuid.UUID("5f1d0c57-8a53-4b0e-9a7c-3c2b7e6a1e11")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def event_row(event: TelemetryEvent) -> tuple[Any, ...]:
    """Return the event's values in EVENT_COLUMNS order, metadata and context as JSON text."""
    out = [getattr(event, name) for name in EVENT_COLUMNS]
    meta_at, ctx_at = EVENT_COLUMNS.index("metadata"), EVENT_COLUMNS.index("context")
    out[meta_at] = event.metadata_json if event.metadata_json is not None else (
        None if event.metadata is None else _dumps(event.metadata))
    out[ctx_at] = event.context_json if event.context_json is not None else (
        None if event.context is None else _dumps(event.context))
    return tuple(out)


def session_row(session: Session) -> list[Any]:
    """Return the session's values in SESSION_COLUMNS order, metadata as JSON text."""
    out = [getattr(session, name) for name in SESSION_COLUMNS]
    out[-1] = None if session.metadata is None else _dumps(session.metadata)
    return out


def typed_cell(column: str, text: str | None, where: str) -> Any:
    """Turn a text cell (CSV) back into the column's type; ValueError naming the column and place."""
    if text is None:
        return None
    try:
        if column in INT_COLUMNS:
            return int(float(text)) if "." in text or "e" in text.lower() else int(text)
        if column in FLOAT_COLUMNS:
            return float(text)
        if column in JSON_COLUMNS:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return value
    except ValueError as exc:
        expected = ("an integer" if column in INT_COLUMNS else "a number" if column in FLOAT_COLUMNS
                    else "a JSON object")
        raise ValueError(f"{where}: {column}: expected {expected}, got {text[:60]!r} ({exc})") from None
    return text


def decode_json_columns(record: dict[str, Any], where: str) -> dict[str, Any]:
    """Decode metadata and context given as JSON text (Parquet, CSV) into objects."""
    for column in JSON_COLUMNS:
        value = record.get(column)
        if isinstance(value, str):
            record[column] = typed_cell(column, value, where)
    return record


def content_event_id(record: dict[str, Any]) -> str:
    """Return a stable id for a record without one, derived from its content."""
    return str(uuid.uuid5(_IMPORT_NAMESPACE, json.dumps(record, sort_keys=True, default=str)))
