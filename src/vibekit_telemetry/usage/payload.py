"""Seed 004's usage payload: the field whitelist, its validation, and its mapping to and from events.

The client builds payloads of exactly this shape, the ingestion endpoint validates against it (unknown
fields dropped, wrong types refused naming the field), and the lake stores the `data` objects as they are.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent

# The category of the events a usage payload becomes in the store; the batcher follows only these.
USAGE_CATEGORY: Final = "usage"
METADATA_KEY: Final = "usage"
EVENT_NAMES: Final = frozenset({"command_executed", "command_error"})
MAX_TEXT: Final = 200
MAX_OPTIONS: Final = 50
MAX_TOKENS: Final = 10**12
EARLIEST_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_CLOCK_AHEAD_MS: Final = 86_400_000
# Seed 004's names and what each must be: "text", "count" (int >= 0), "ms" (number >= 0), "bool", "options".
FIELDS: Final[dict[str, str]] = {
    "eventName": "text", "userId": "text", "sessionId": "text", "timestamp": "iso", "toolVersion": "text",
    "command": "text", "duration": "ms", "contextTokens": "count", "promptTokens": "count",
    "completionTokens": "count", "provider": "text", "model": "text", "fileProvider": "text",
    "fileModel": "text", "thinkingProvider": "text", "thinkingModel": "text", "options": "options",
    "hasError": "bool", "errorType": "text",
}
REQUIRED: Final = ("eventName", "userId", "sessionId", "timestamp")
# Namespace of the deterministic event ids: a payload re-sent (offline queue, retry) is stored once.
_ID_NAMESPACE: Final = uuid.UUID("5b0c7a52-3f0e-4bf4-9a51-7c3c8f5e2d11")


def iso_now() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds, as the client sends it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str, field: str = "timestamp") -> int:
    """Return epoch ms of an ISO 8601 time; a time without zone is UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise ValidationError(field, "an ISO 8601 time such as 2025-01-31T12:00:00.000Z", value) from None


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "a string", value)
    if len(value) > MAX_TEXT:
        raise ValidationError(field, f"a string of at most {MAX_TEXT} characters", value)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValidationError(field, "text without lone surrogates", value)
    return value


def _number(value: Any, field: str, *, integer: bool) -> int | float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    if integer and ok and isinstance(value, float):
        ok = value.is_integer()
    if not ok or value > MAX_TOKENS:
        kind = "an integer >= 0" if integer else "a number of milliseconds >= 0"
        raise ValidationError(field, kind, value)
    return int(value) if integer else float(value)


def _options(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, "an object of option names to scalar values", value)
    if len(value) > MAX_OPTIONS:
        raise ValidationError(field, f"at most {MAX_OPTIONS} options", len(value))
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{field}.{key}"
        _text(key, name)
        if item is None or isinstance(item, bool):
            out[key] = item
        elif isinstance(item, int | float):
            out[key] = _number(item, name, integer=False) if not isinstance(item, int) else item
        else:
            out[key] = _text(item, name)
    return out


def validate_payload(data: Any) -> dict[str, Any]:
    """Return the whitelisted copy of a `data` object: unknown fields dropped, null optional fields left out.

    Raises ValidationError naming the first field of a wrong type or a missing required one.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("data", "an object with eventName, userId, sessionId and timestamp", data)
    out: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        value = data.get(name)
        if value is None:
            if name in REQUIRED:
                raise ValidationError(f"data.{name}", f"a value ({'ISO 8601 time' if kind == 'iso' else kind})")
            continue
        field = f"data.{name}"
        if kind in ("text", "iso"):
            out[name] = _text(value, field)
        elif kind == "count":
            out[name] = _number(value, field, integer=True)
        elif kind == "ms":
            out[name] = _number(value, field, integer=False)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ValidationError(field, "true or false", value)
            out[name] = value
        else:
            out[name] = _options(value, field)
    if out["eventName"] not in EVENT_NAMES:
        raise ValidationError("data.eventName", "command_executed or command_error", out["eventName"])
    at = parse_iso(out["timestamp"], "data.timestamp")
    # A clock far off (year 1 or 9999) would put the run on a day it never happened: refuse it.
    if not EARLIEST_MS <= at <= time.time() * 1000 + MAX_CLOCK_AHEAD_MS:
        raise ValidationError("data.timestamp", "a time between 2000-01-01 and one day from now", out["timestamp"])
    return out


def payload_id(data: Mapping[str, Any]) -> str:
    """Return the deterministic event id of a payload (same payload, same id: duplicates are skipped)."""
    return str(uuid.uuid5(_ID_NAMESPACE, json.dumps(data, sort_keys=True, separators=(",", ":"))))


def to_raw_event(data: Mapping[str, Any], category: str = USAGE_CATEGORY) -> dict[str, Any]:
    """Return the raw event (for the processor chain) that carries a validated payload into the store.

    No session id: a CLI invocation is not an agent session, and a session left open would count as active.
    """
    return {"event_type": "custom", "category": category, "action": data.get("command") or data["eventName"],
            "label": data["eventName"], "timestamp": parse_iso(data["timestamp"]),
            "duration": data.get("duration"), "event_id": payload_id(data),
            "metadata": {METADATA_KEY: dict(data)}}


def from_event(event: TelemetryEvent) -> dict[str, Any] | None:
    """Return the payload an event carries, or None for an event that is not a usage payload."""
    meta = event.metadata
    if not isinstance(meta, dict):
        return None
    data = meta.get(METADATA_KEY)
    if not isinstance(data, dict) or "eventName" not in data:
        return None
    return data
