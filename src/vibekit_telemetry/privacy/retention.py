"""Compliance retention (seed 001 `compliance`): anonymise after N days, delete after M days.

anonymize_after removes the user-identifying keys (security.retention.user_fields) from the context
and metadata of events older than N days; the rest of the event (what the agent did, how long it
took) stays for analytics. delete_after deletes events older than M days (and sessions left empty).
Both run on the scheduler (Runtime's `privacy-retention` job), never inside a write, in small
transactions; each run that changed something leaves one audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from ..events import now_ms
from ..store.base import Auditable

DAY_MS: Final = 86_400_000
_PAGE: Final = 500
ACTOR: Final = "system:retention"


def _strip(data: dict[str, Any] | None, fields: frozenset[str]) -> dict[str, Any] | None:
    if not data or not fields & data.keys():
        return data
    return {k: v for k, v in data.items() if k not in fields}


def anonymize(store: Any, before_ms: int, fields: Sequence[str]) -> int:
    """Remove the identifying keys from events older than before_ms; return how many events changed."""
    from ..store.memory import MemoryStore
    from ..store.sql import SQLStore

    names = frozenset(fields)
    if isinstance(store, MemoryStore):
        changed = 0
        with store._lock:
            for event in store._events.values():
                if event.timestamp < before_ms:
                    context, metadata = _strip(event.context, names), _strip(event.metadata, names)
                    if context is not event.context or metadata is not event.metadata:
                        event.context, event.metadata = context, metadata
                        changed += 1
        return changed
    if isinstance(store, SQLStore):
        return _anonymize_sql(store, before_ms, names)
    return 0


def _anonymize_sql(store: Any, before_ms: int, names: frozenset[str]) -> int:
    from sqlalchemy import or_, select, update

    from ..store.schema import events
    from .crypto import decrypt_meta, encrypt_meta

    c = events.c
    # A key can only be present if its quoted name is in the JSON text (metadata may be encrypted:
    # those rows are read, decrypted and checked in Python).
    maybe = or_(*(c.context.like(f'%"{name}"%') for name in names), c.metadata.like('{"_vkenc"%'),
                *(c.metadata.like(f'%"{name}"%') for name in names))
    changed, last = 0, ""
    encryption = getattr(store, "encryption", None)
    while True:
        with store.maintenance_transaction() as conn:
            rows = conn.execute(select(c.event_id, c.context, c.metadata).where(
                c.timestamp < before_ms, c.event_id > last, maybe).order_by(c.event_id).limit(_PAGE)).all()
            if not rows:
                return changed
            for event_id, context_text, meta_text in rows:
                values: dict[str, Any] = {}
                context = json.loads(context_text) if context_text else None
                if context and names & context.keys():
                    values["context"] = json.dumps(_strip(context, names))
                plain = decrypt_meta(meta_text)
                metadata = json.loads(plain) if plain else None
                if isinstance(metadata, dict) and names & metadata.keys():
                    text = json.dumps(_strip(metadata, names))
                    was_encrypted = plain != meta_text
                    values["metadata"] = encrypt_meta(encryption.kid, text) \
                        if was_encrypted and encryption is not None and encryption.kid else text
                if values:
                    conn.execute(update(events).where(c.event_id == event_id).values(**values))
                    changed += 1
            last = rows[-1][0]


def apply_retention(store: Any, retention: Any, now: int | None = None) -> dict[str, int]:
    """Run anonymize_after and delete_after once on a store; audit what changed; return the counts."""
    now = now_ms() if now is None else now
    done = {"anonymized": 0, "deleted": 0}
    if retention.delete_after:  # first: what goes anyway need not be anonymised
        done["deleted"] = store.clean(older_than_ms=now - int(retention.delete_after * DAY_MS))
    if retention.anonymize_after:
        done["anonymized"] = anonymize(store, now - int(retention.anonymize_after * DAY_MS), retention.user_fields)
    if any(done.values()) and isinstance(store, Auditable):
        store.record_audit(ACTOR, "retention", "events", {**done, "anonymize_after_days": retention.anonymize_after,
                                                          "delete_after_days": retention.delete_after},
                           table="events")
    return done
