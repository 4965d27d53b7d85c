"""The built-in steps of the chain, each doing one job."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent, encode_json, event_from_mapping, truncate_fields, validate_event
from ..ids import uuid7, uuid7_many
from .sampling import Sample as Sample  # per-session head sampling: its own module

_MAX_KNOWN_SESSIONS: Final = 100_000


class Normalise:
    """Raw input to an event: dicts in any spelling (aliases, camelCase, VibeKit names) become events.

    Queued dicts arrive as (dict, time_ns) so the caller's clock reading is kept; a missing timestamp
    is filled from it (or from now).
    """

    name = "normalise"

    def process(self, raw: Any) -> TelemetryEvent | None:
        """Return the event raw input describes."""
        stamped_ns = 0
        if type(raw) is tuple:
            raw, stamped_ns = raw
        if type(raw) is dict:  # the usual input, before the slower ABC check below
            event = event_from_mapping(raw)
        elif isinstance(raw, TelemetryEvent):
            event = raw
        elif isinstance(raw, Mapping):
            event = event_from_mapping(raw)
        else:
            raise ValidationError("event", "a dict or TelemetryEvent", raw)
        if not event.timestamp:
            event.timestamp = (stamped_ns or time.time_ns()) // 1_000_000
        return event


class Validate:
    """Check every field: types, ranges, and whatever the store would refuse (lone surrogates, empty ids)."""

    name = "validate"

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        """Return the event, or raise ValidationError naming the field."""
        return validate_event(event)


class Enrich:
    """Fill ids, the session's category and action, service name/version and the configured context.

    Remembers the category and action of started sessions (bounded, oldest forgotten first) so stream,
    end and error events need only the session id. When a session's start never arrived, the store
    creates the session from the first event it gets.
    """

    name = "enrich"

    def __init__(self, *, service_name: str, service_version: str, context: Mapping[str, Any] | None = None,
                 max_sessions: int = _MAX_KNOWN_SESSIONS) -> None:
        self.service_name = service_name
        self.service_version = service_version
        self.context = dict(context or {})
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been copied while held)."""
        self._lock = threading.Lock()

    def process_batch(self, events: list[TelemetryEvent]) -> list[TelemetryEvent]:
        """Enrich a batch in order: the missing event ids made in one go (one lock, one clock read)."""
        missing = [event for event in events if event.event_id is None]
        for event, event_id in zip(missing, uuid7_many([event.timestamp for event in missing]), strict=True):
            event.event_id = event_id
        return [self.process(event) for event in events]

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        """Return the event with its ids, session context and service fields filled in."""
        if event.event_id is None:
            event.event_id = uuid7(event.timestamp)
        sid = event.session_id
        if event.event_type == "start":
            if sid is None:
                sid = event.session_id = uuid7(event.timestamp)
            with self._lock:
                self._sessions[sid] = (event.category, event.action)
                if len(self._sessions) > self.max_sessions:
                    self._sessions.popitem(last=False)
        elif sid is not None and (event.category is None or event.action is None):
            known = self._sessions.get(sid)
            if known is not None:
                if event.category is None:
                    event.category = known[0]
                if event.action is None:
                    event.action = known[1]
        if event.event_type == "end" and sid is not None:
            with self._lock:
                self._sessions.pop(sid, None)
        if event.service_name is None:
            event.service_name = self.service_name
            event.service_version = self.service_version
        if self.context:
            event.context = {**self.context, **event.context} if event.context else dict(self.context)
        return event


class Truncate:
    """Cut long text fields to max_field_length and list the cut fields in metadata._truncated."""

    name = "truncate"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.truncated = 0

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        """Return the event with long fields cut."""
        if self.limit and truncate_fields(event, self.limit):
            self.truncated += 1
        return event


class Encode:
    """Encode metadata and context as JSON text once, so stores and exporters need not encode again."""

    name = "encode"

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        """Return the event with metadata_json and context_json set; raise ValidationError if it cannot be."""
        event.metadata_json = _checked_json("metadata", event.metadata)
        event.context_json = _checked_json("context", event.context)
        return event


def _checked_json(name: str, value: dict[str, Any] | None) -> str | None:
    text = encode_json(name, value)
    if text is not None and not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: valid in Python, refused by every store
            raise ValidationError(name, "text without lone surrogates (valid UTF-8)",
                                  text[max(0, exc.start - 10):exc.end + 10]) from None
    return text
