"""The three ways seed code calls track_start/stream/end/error, turned into one event each.

Styles: keywords (`track_start("claude", "code", "Fix it", metadata=...)`), one dict in any accepted
spelling (seed 003's object style), and VibeKit's legacy positional form, recognised by its extra
positional arguments (session id first). Pure functions: they raise ValidationError, never track.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .errors import ValidationError
from .events import END_STATUS_ALIASES, TelemetryEvent, copy_mapping
from .ids import uuid7

Event = TelemetryEvent | dict[str, Any]


def _mapping_or_none(name: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(name, "a dict", value)
    return copy_mapping(name, value)


def _legacy_payload(call: str, what: str, agent_type: Any, legacy: Sequence[Any],
                    metadata: Mapping[str, Any] | None) -> tuple[Any, Any, Any, Any]:
    """Unpack VibeKit's (session_id, agent_type, mode, prompt, <what>, sandbox_id, repo_url, metadata).

    Returns (category, action, the <what> value, metadata); the session id stays with the caller.
    """
    if len(legacy) < 3:
        raise ValidationError(call, f"(session_id, {what}) or the legacy (session_id, agent_type, mode, "
                              f"prompt, {what}, …)")
    return agent_type, legacy[0], legacy[2], legacy[5] if len(legacy) > 5 else metadata


def start_event(agent_type: Any, mode: Any, prompt: Any, legacy: Sequence[Any], *, session_id: str | None,
                sandbox_id: str | None, repo_url: str | None, metadata: Mapping[str, Any] | None,
                timestamp: int | None, context: Mapping[str, Any] | None) -> tuple[str, Event]:
    """Return the new session's id and its start event."""
    if isinstance(agent_type, Mapping):
        values = dict(agent_type)
        values.setdefault("event_type", "start")
        sid = values.pop("sessionId", None) or values.get("session_id") or uuid7()
        values["session_id"] = sid
        return str(sid), values
    if legacy:  # (session_id, agent_type, mode, prompt, sandbox_id, repo_url, metadata)
        session_id, agent_type, mode, prompt = agent_type, mode, prompt, legacy[0]
        sandbox_id, repo_url, metadata = [*legacy[1:4], None, None, None][:3]
    sid = session_id or uuid7()
    return sid, TelemetryEvent(
        event_type="start", category=agent_type, action=mode, label=prompt, session_id=sid,
        sandbox_id=sandbox_id, repo_url=repo_url, metadata=_mapping_or_none("metadata", metadata),
        timestamp=timestamp or 0, context=_mapping_or_none("context", context))


def stream_event(session_id: Any, stream_data: Any, legacy: Sequence[Any], *,
                 metadata: Mapping[str, Any] | None, timestamp: int | None) -> Event:
    """Return the stream event of one output chunk."""
    if isinstance(session_id, Mapping):
        return {"event_type": "stream", **session_id}
    category = action = None
    if legacy:
        category, action, stream_data, metadata = _legacy_payload("track_stream", "stream_data", stream_data,
                                                                   legacy, metadata)
    if type(session_id) is not str:
        raise ValidationError("session_id", "a string", session_id)
    if type(stream_data) is not str:
        raise ValidationError("stream_data", "a string", stream_data)
    return TelemetryEvent("stream", category, session_id, action, None, None, stream_data,
                          timestamp=timestamp or 0, metadata=_mapping_or_none("metadata", metadata))


def end_event(session_id: Any, status: Any, legacy: Sequence[Any], *, metadata: Mapping[str, Any] | None,
              duration: float | None, timestamp: int | None) -> Event:
    """Return the end event, its status normalised to completed, error or cancelled."""
    category = action = None
    if isinstance(session_id, Mapping):
        values = dict(session_id)
        meta = _mapping_or_none("metadata", values.pop("metadata", None)) or {}
        status = values.pop("status", meta.get("status", status))
        session_id = values.pop("session_id", values.pop("sessionId", None))
        category = values.pop("category", values.pop("agentType", values.pop("agent_type", None)))
        action = values.pop("action", values.pop("mode", None))
        metadata = meta
        if values:
            raise ValidationError(next(iter(values)), "a known end-event field (session_id, status, "
                                  "category, action, metadata)")
    elif legacy:  # (session_id, agent_type, mode, prompt, sandbox_id, repo_url, metadata)
        category, action = status, legacy[0]
        metadata = _mapping_or_none("metadata", legacy[4] if len(legacy) > 4 else metadata)
        status = (metadata or {}).get("status", "completed")
    normalised = END_STATUS_ALIASES.get(str(status).lower())
    if normalised is None:
        raise ValidationError("status", "one of completed, error, cancelled", status)
    meta = {**(metadata or {}), "status": normalised}
    return TelemetryEvent("end", category, session_id, action, metadata=meta, duration=duration,
                          timestamp=timestamp or 0)


# An exception's message is kept whole in the label (cut at max_field_length like any text) and cut to
# this in metadata.error.message, so a 10 MB message is not stored twice.
ERROR_MESSAGE_MAX: Final = 8192


def exception_text(error: BaseException) -> str:
    """An exception's message as text a store takes, whatever its __str__ does (Sentry's safe_str)."""
    try:
        text = str(error)
    except Exception as failure:
        try:
            text = repr(error)
        except Exception:
            text = f"<message unavailable: str() raised {type(failure).__name__}>"
    if not text.isascii():
        # Our rendering of the application's object, not its input: a lone surrogate (a file name
        # decoded with surrogateescape, say) becomes its escape instead of costing the whole event.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def error_event(session_id: Any, error: Any, legacy: Sequence[Any], *, metadata: Mapping[str, Any] | None,
                timestamp: int | None) -> Event:
    """Return the error event of an exception or a message."""
    if isinstance(session_id, Mapping):
        return {"event_type": "error", **session_id}
    category = action = None
    if legacy:
        category, action, error, metadata = _legacy_payload("track_error", "error", error, legacy, metadata)
    meta = _mapping_or_none("metadata", metadata) or {}
    if isinstance(error, BaseException):
        message = exception_text(error)
        meta.setdefault("error", {"type": type(error).__name__, "message": message[:ERROR_MESSAGE_MAX]})
        label = f"{type(error).__name__}: {message}"
    elif isinstance(error, str):
        label = error
    else:
        raise ValidationError("error", "an exception or a message string", error)
    return TelemetryEvent("error", category, session_id, action, label, metadata=meta or None,
                          timestamp=timestamp or 0)


_FIRST_ARGUMENT = {"start": "category", "stream": "session_id", "end": "session_id", "error": "session_id"}
_NAMED = {"mode": "action", "prompt": "label"}


def keyword_fields(kind: str, first: Any, fields: Mapping[str, Any], **named: Any) -> dict[str, Any]:
    """One dict event from a keyword call such as track_end(session_id=…, agent_type=…, metadata=…).

    The seeds call the recording methods with their parameter objects spread as keywords, in
    snake_case or camelCase; this folds them (and the method's own keyword arguments) into the dict
    style, so aliases and checks are the chain's as for any dict event.
    """
    values: dict[str, Any] = {}
    if isinstance(first, Mapping):
        values.update(first)
    elif first is not None:
        values[_FIRST_ARGUMENT[kind]] = first
    for name, value in named.items():
        if value is not None:
            values[_NAMED.get(name, name)] = value
    for name, value in fields.items():
        if name in ("event_type", "eventType", "type"):
            if value != kind:
                raise ValidationError(name, f"{kind!r} (this is track_{kind}) or nothing", value)
            continue
        values[name] = value
    if kind == "end":
        return values  # end_event knows its own keys (status folded into metadata)
    values["event_type"] = kind
    return values
