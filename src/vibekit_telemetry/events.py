"""The event model: one dataclass, its field aliases, validation, and the fluent builder."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from .errors import ValidationError
from .jsonable import jsonable

EVENT_TYPES: Final = frozenset({"start", "stream", "end", "error", "custom"})
SESSION_STATUSES: Final = ("active", "completed", "error", "cancelled")
# Words people use for how a session ended, mapped to the stored status.
END_STATUS_ALIASES: Final = {
    "completed": "completed", "complete": "completed", "success": "completed", "succeeded": "completed",
    "ok": "completed", "done": "completed",
    "error": "error", "failed": "error", "failure": "error",
    "cancelled": "cancelled", "canceled": "cancelled", "aborted": "cancelled", "timeout": "cancelled",
}

# Anything below this is taken for seconds: 1e11 ms is March 1973, 1e11 s is the year 5138.
MIN_TIMESTAMP_MS: Final = 100_000_000_000
# The last millisecond of the year 9999: later values are typos (or microseconds), and past 2**63
# they would not even fit the store's integer column.
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999
# Numbers are stored as 64-bit floats: a larger int would overflow (math.isfinite raises on it).
MAX_NUMBER: Final = 1.7e308
DEFAULT_MAX_FIELD_LENGTH: Final = 65_536


@dataclass(slots=True)
class TelemetryEvent:
    """One tracked event, as stored and as returned by queries."""

    event_type: str
    category: str | None
    session_id: str | None = None
    action: str | None = None
    label: str | None = None
    value: float | None = None
    stream_data: str | None = None
    sandbox_id: str | None = None
    repo_url: str | None = None
    timestamp: int = 0
    duration: float | None = None
    metadata: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    service_name: str | None = None
    service_version: str | None = None
    event_id: str | None = None
    # Filled on the writer thread: the JSON text of metadata and context, so stores need not encode twice.
    metadata_json: str | None = field(default=None, repr=False, compare=False)
    context_json: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self, *, camel: bool = False) -> dict[str, Any]:
        """Return the event as a plain dict (snake_case, or the seeds' camelCase with camel=True)."""
        out = {name: getattr(self, name) for name in PUBLIC_FIELDS}
        if camel:
            return {CAMEL_NAMES[k]: v for k, v in out.items()}
        return out


PUBLIC_FIELDS: Final = tuple(f.name for f in fields(TelemetryEvent) if not f.name.endswith("_json"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


CAMEL_NAMES: Final = {name: _camel(name) for name in PUBLIC_FIELDS}

# Every accepted spelling of a field, mapped to its canonical name: the snake_case names, the seeds'
# camelCase names, and the VibeKit names (agentType -> category, mode -> action, prompt -> label).
FIELD_ALIASES: Final[dict[str, str]] = {
    **{name: name for name in PUBLIC_FIELDS},
    **{CAMEL_NAMES[name]: name for name in PUBLIC_FIELDS},
    "id": "event_id",
    "type": "event_type",
    "agent_type": "category", "agentType": "category", "agent": "category",
    "mode": "action",
    "prompt": "label",
    "data": "stream_data",
    "service": "service_name",
    "ts": "timestamp",
}
# Extra keys accepted in dict input and folded into metadata: `status` of an end, `error` of an error.
_FOLDED_KEYS: Final = frozenset({"status", "error"})
_PUBLIC_NAMES: Final = frozenset(PUBLIC_FIELDS)


def now_ms() -> int:
    """Return the current time as epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _check_str(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValidationError(name, "a non-empty string", None)
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "a string", value)
    if required and not value:
        raise ValidationError(name, "a non-empty string", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: a valid Python str that no store can hold
            raise ValidationError(name, "text without lone surrogates (valid UTF-8)", value) from None
    return value


def _check_number(name: str, value: Any, *, minimum: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, "a number", value)
    if isinstance(value, int) and abs(value) > MAX_NUMBER:
        raise ValidationError(name, "a number that fits a 64-bit float", value)
    if not math.isfinite(value):
        raise ValidationError(name, "a finite number (NaN and Infinity are not allowed)", value)
    if minimum is not None and value < minimum:
        raise ValidationError(name, f"a number >= {minimum:g}", value)
    return value


def check_timestamp(value: Any, name: str = "timestamp") -> int:
    """Validate an epoch-milliseconds timestamp, rejecting values that are plainly seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, "epoch milliseconds as a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(name, "a finite number of epoch milliseconds", value)
    if value < MIN_TIMESTAMP_MS:
        raise ValidationError(
            name, "epoch milliseconds (this value looks like seconds: multiply by 1000)", value
        )
    if value > MAX_TIMESTAMP_MS:
        raise ValidationError(name, "epoch milliseconds before the year 10000 (microseconds? divide by 1000)",
                              value)
    return int(value)


def copy_mapping(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy of a caller's mapping; ValidationError naming `name` when reading it raises."""
    try:
        return dict(value)
    except Exception as exc:  # a lazy proxy whose backend is gone, say: the event fails, never the host
        raise ValidationError(name, f"a mapping that can be read ({type(exc).__name__}: {exc})",
                              type(value).__name__) from None


def _check_mapping(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(name, "a JSON object (dict)", value)
    copied = copy_mapping(name, value)
    for key in copied:
        if not isinstance(key, str):
            raise ValidationError(f"{name}.{key!r}", "string keys", key)
    # datetimes, UUIDs, sets, dataclasses ... become JSON values here, before redaction sees the text.
    return jsonable(copied)


def encode_json(name: str, value: dict[str, Any] | None) -> str | None:
    """Encode metadata or context as JSON, naming the first offending key when it cannot be."""
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(_find_bad_path(name, value), "JSON-serialisable values without NaN, "
                              f"Infinity or cycles ({exc})") from None


def _find_bad_path(path: str, value: Any, seen: frozenset[int] = frozenset()) -> str:
    """Return the dotted path of the first value json cannot encode (a cycle ends at its first repeat)."""
    if not isinstance(value, Mapping | list | tuple) or id(value) in seen or len(seen) > 64:
        return path
    seen = seen | {id(value)}
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        sub = f"{path}.{key}" if isinstance(value, Mapping) else f"{path}[{key}]"
        if not _json_ok(item):
            return _find_bad_path(sub, item, seen)
    return path


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def truncate_fields(event: TelemetryEvent, limit: int) -> list[str]:
    """Cut label, stream_data and repo_url to `limit` characters; return the names of the cut fields."""
    cut: list[str] = []
    for name in ("label", "stream_data", "repo_url", "sandbox_id", "action"):
        text = getattr(event, name)
        if text is not None and len(text) > limit:
            setattr(event, name, text[:limit])
            cut.append(name)
    if cut:
        meta = dict(event.metadata or {})
        meta["_truncated"] = cut
        event.metadata = meta
    return cut


# Checked in this order (the first bad one is named): optional text fields after category and session_id.
_OPTIONAL_TEXT: Final = ("action", "label", "stream_data", "sandbox_id", "repo_url", "event_id", "service_name",
                         "service_version")


def validate_event(event: TelemetryEvent, *, require_session: bool = True) -> TelemetryEvent:
    """Check every field of an event in place and return it; raise ValidationError naming the field."""
    if not isinstance(event.event_type, str) or event.event_type not in EVENT_TYPES:
        raise ValidationError("event_type", "one of " + ", ".join(sorted(EVENT_TYPES)), event.event_type)
    # Stream, end and error events may leave category empty: the session's category is used.
    _check_str("category", event.category, required=event.event_type in ("start", "custom"))
    if event.category is not None and not event.category:
        raise ValidationError("category", "a non-empty string", event.category)
    _check_str("session_id", event.session_id,
               required=require_session and event.event_type in ("stream", "end", "error"))
    for name in _OPTIONAL_TEXT:
        text = getattr(event, name)
        # None or ASCII text is the usual case: only anything else takes the full check.
        if text is not None and (type(text) is not str or not text.isascii()):
            _check_str(name, text)
    if event.event_id == "":
        raise ValidationError("event_id", "a non-empty string (or none: one is assigned)", "")
    if event.session_id == "":
        raise ValidationError("session_id", "a non-empty string", "")
    if event.value is not None:
        _check_number("value", event.value)
    if event.duration is not None:
        _check_number("duration", event.duration, minimum=0)
    if event.timestamp:
        event.timestamp = check_timestamp(event.timestamp)
    event.metadata = _check_mapping("metadata", event.metadata)
    event.context = _check_mapping("context", event.context)
    return event


def event_from_mapping(data: Mapping[str, Any]) -> TelemetryEvent:
    """Build an event from a dict in any accepted spelling; unknown keys are an error."""
    if type(data) is dict and "event_type" in data and _PUBLIC_NAMES.issuperset(data):
        # The common case, checked in C: only canonical names (no aliases to resolve or collide, nothing
        # to fold), so the dict is the constructor's arguments as it stands.
        return TelemetryEvent(**data) if "category" in data else TelemetryEvent(category=None, **data)
    if not isinstance(data, Mapping):
        raise ValidationError("event", "a dict or TelemetryEvent", data)
    values: dict[str, Any] = {}
    folded: dict[str, Any] = {}
    for key, value in data.items():
        name = FIELD_ALIASES.get(key)
        if name is None:
            if key in _FOLDED_KEYS:
                folded[key] = value
                continue
            raise ValidationError(str(key), "a known event field (see TelemetryEvent: " +
                                  ", ".join(PUBLIC_FIELDS) + ")", message=None)
        if name in values and values[name] != value:
            raise ValidationError(str(key), f"one value for {name}, given twice under different names",
                                  value)
        values[name] = value
    if "event_type" not in values:
        raise ValidationError("event_type", "one of " + ", ".join(sorted(EVENT_TYPES)), None)
    if "category" not in values:
        values["category"] = None
    event = TelemetryEvent(**values)
    if folded:
        if not isinstance(event.metadata, Mapping) and event.metadata is not None:
            raise ValidationError("metadata", "a JSON object (dict)", event.metadata)
        meta = dict(event.metadata or {})
        for key, value in folded.items():
            meta.setdefault(key, value if isinstance(value, str | int | float | bool) or value is None
                            else str(value))
        if "error" in folded and event.label is None and isinstance(folded["error"], str):
            event.label = folded["error"]
        event.metadata = meta
    return event


def coerce_event(event: TelemetryEvent | Mapping[str, Any]) -> TelemetryEvent:
    """Return a TelemetryEvent from an event or a dict, not yet validated."""
    if isinstance(event, TelemetryEvent):
        return event
    return event_from_mapping(event)


class EventBuilder:
    """Fluent builder for events: EventBuilder().with_category("claude").with_value(3).build()."""

    def __init__(self, event_type: str = "custom") -> None:
        self._values: dict[str, Any] = {"event_type": event_type}

    def _set(self, name: str, value: Any) -> EventBuilder:
        self._values[name] = value
        return self

    def with_event_type(self, event_type: str) -> EventBuilder:
        """Set the event type (start, stream, end, error, custom)."""
        return self._set("event_type", event_type)

    def with_session_id(self, session_id: str) -> EventBuilder:
        """Set the session the event belongs to."""
        return self._set("session_id", session_id)

    def with_category(self, category: str) -> EventBuilder:
        """Set the category (the agent type)."""
        return self._set("category", category)

    def with_action(self, action: str) -> EventBuilder:
        """Set the action (the mode)."""
        return self._set("action", action)

    def with_label(self, label: str) -> EventBuilder:
        """Set the label (the prompt, or an error message)."""
        return self._set("label", label)

    def with_value(self, value: float) -> EventBuilder:
        """Set the numeric value."""
        return self._set("value", value)

    def with_stream_data(self, data: str) -> EventBuilder:
        """Set the streamed output chunk."""
        return self._set("stream_data", data)

    def with_duration(self, duration_ms: float) -> EventBuilder:
        """Set the duration in milliseconds."""
        return self._set("duration", duration_ms)

    def with_timestamp(self, timestamp_ms: int) -> EventBuilder:
        """Set the timestamp in epoch milliseconds."""
        return self._set("timestamp", timestamp_ms)

    def with_sandbox_id(self, sandbox_id: str) -> EventBuilder:
        """Set the sandbox id."""
        return self._set("sandbox_id", sandbox_id)

    def with_repo_url(self, repo_url: str) -> EventBuilder:
        """Set the repository URL."""
        return self._set("repo_url", repo_url)

    def with_metadata(self, metadata: Mapping[str, Any]) -> EventBuilder:
        """Merge keys into the metadata."""
        merged = dict(self._values.get("metadata") or {})
        merged.update(metadata)
        return self._set("metadata", merged)

    def with_context(self, context: Mapping[str, Any]) -> EventBuilder:
        """Merge keys into the context (user_id, organization_id, environment, version, platform)."""
        merged = dict(self._values.get("context") or {})
        merged.update(context)
        return self._set("context", merged)

    def build(self) -> TelemetryEvent:
        """Return the validated event; raise ValidationError naming the first bad field."""
        event = event_from_mapping(self._values)
        return validate_event(event, require_session=False)
