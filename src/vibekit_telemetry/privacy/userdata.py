"""A user's data on request (seed 003 exportUserData / deleteUserData), both recorded in the audit log.

A user is found by the value of the identifying keys (security.retention.user_fields: user, user_id,
email …) in an event's context or metadata, or their `id` when the value is an object. The whole
store is scanned in constant memory (iter_events): requests are rare, and an index on user ids would
itself be personal data kept for ever. Every session holding one of the user's events is deleted
whole (its other events are about the same conversation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent, now_ms
from ..query import QueryFilter
from ..store.base import Auditable, EventIterable

DEFAULT_USER_FIELDS: Final = ("user", "user_id", "userId", "email", "username")


def user_ref(user_id: str) -> str:
    """Return how the audit log names a user: a hash, so the log itself keeps nothing of theirs."""
    return "user:sha256:" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


def _matches(value: Any, user_id: str) -> bool:
    if isinstance(value, Mapping):
        return any(_matches(value.get(k), user_id) for k in ("id", "user_id", "email"))
    return value is not None and str(value) == user_id


def belongs_to(event: TelemetryEvent, user_id: str, fields: Sequence[str] = DEFAULT_USER_FIELDS) -> bool:
    """Return True when the event's context or metadata names this user in one of the identifying fields."""
    for data in (event.context, event.metadata):
        if data and any(_matches(data.get(name), user_id) for name in fields):
            return True
    return False


def _check(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValidationError("user_id", "a non-empty string", user_id)
    return user_id


def user_events(store: Any, user_id: str, fields: Sequence[str] = DEFAULT_USER_FIELDS) -> Iterator[TelemetryEvent]:
    """Yield every event of the user's sessions (and their session-less events), oldest first."""
    user_id = _check(user_id)
    if not isinstance(store, EventIterable):
        raise ValidationError("store", "a store that can stream its events (iter_events)", type(store).__name__)
    sessions = user_sessions(store, user_id, fields)
    loose = QueryFilter()
    for event in store.iter_events(loose):
        if (event.session_id in sessions) or (event.session_id is None and belongs_to(event, user_id, fields)):
            yield event


def user_sessions(store: Any, user_id: str, fields: Sequence[str] = DEFAULT_USER_FIELDS) -> set[str]:
    """Return the ids of the sessions holding at least one event that names the user."""
    return {e.session_id for e in store.iter_events(QueryFilter())
            if e.session_id is not None and belongs_to(e, user_id, fields)}


def export_user_data(store: Any, user_id: str, *, actor: str = "sdk",
                     fields: Sequence[str] = DEFAULT_USER_FIELDS) -> dict[str, Any]:
    """Return the user's sessions and events as one JSON-ready document; recorded in the audit log."""
    user_id = _check(user_id)
    events = list(user_events(store, user_id, fields))
    session_ids = sorted({e.session_id for e in events if e.session_id is not None})
    sessions = [s.to_dict() for s in (store.get_session(sid) for sid in session_ids) if s is not None]
    document = {"user_id": user_id, "exported_at": now_ms(), "sessions": sessions,
                "events": [e.to_dict() for e in events]}
    if isinstance(store, Auditable):
        store.record_audit(actor, "export", user_ref(user_id),
                           {"sessions": len(sessions), "events": len(events)}, table="users",
                           record_id=user_ref(user_id))
    return document


def delete_user_data(store: Any, user_id: str, *, reason: str, request_id: str | None = None,
                     actor: str = "sdk", fields: Sequence[str] = DEFAULT_USER_FIELDS,
                     reclaim: bool = True) -> dict[str, Any]:
    """Delete every session (and its events) naming the user; audit who, why and what; return the counts.

    reclaim=True compacts the store afterwards (SQLite VACUUM), so the deleted text does not linger
    in free pages of the database file.
    """
    user_id = _check(user_id)
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason", "why the data is deleted (a non-empty string)", reason)
    session_ids = sorted(user_sessions(store, user_id, fields))
    deleted = store.clean(session_ids=session_ids) if session_ids else 0
    if reclaim and deleted:
        store.compact()
    summary = {"user": user_ref(user_id), "sessions": len(session_ids), "events": deleted,
               "reason": reason, "request_id": request_id}
    if isinstance(store, Auditable):
        store.record_audit(actor, "delete", user_ref(user_id), summary, table="users", record_id=user_ref(user_id),
                           old_values={"sessions": session_ids}, new_values=None)
    return summary

