"""`telemetry keys rotate`: re-encrypt every value written under an old key with the current one.

Runs in small transactions (`batch` rows each), so the writer and readers carry on meanwhile; a value
is rewritten only when its key id differs from the current key's, so an interrupted rotation simply
resumes where it stopped when run again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, or_, select, update

from ..errors import StoreError
from .crypto import KEYRING, META_PREFIX, PREFIX, decrypt_meta, encrypt_meta

_TEXT = ("label", "stream_data")


def _kid(value: str | None) -> str | None:
    if value is None:
        return None
    if value.startswith(PREFIX):
        return value[len(PREFIX):].split(":", 1)[0]
    if value.startswith(META_PREFIX):
        return value[len(META_PREFIX) + len(PREFIX):].split(":", 1)[0]
    return None


def _rotate_table(store: Any, table: Table, key: str, columns: tuple[str, ...], kid: str, batch: int,
                  progress: Callable[[int], None] | None) -> int:
    c = table.c
    encrypted = or_(*(c[name].like(PREFIX + "%") for name in columns if name != "metadata"),
                    *([c.metadata.like(META_PREFIX + "%")] if "metadata" in columns else []))
    done, last = 0, ""
    while True:
        with store.maintenance_transaction() as conn:
            rows = conn.execute(select(c[key], *(c[n] for n in columns)).where(c[key] > last, encrypted)
                                .order_by(c[key]).limit(batch)).all()
            if not rows:
                return done
            for row in rows:
                values = dict(zip(columns, row[1:], strict=True))
                changed: dict[str, Any] = {}
                for name, value in values.items():
                    if _kid(value) in (None, kid):
                        continue
                    if name == "metadata":
                        changed[name] = encrypt_meta(kid, decrypt_meta(value))
                    else:
                        changed[name] = KEYRING.encrypt(kid, KEYRING.decrypt(value, name), name)
                if changed:
                    conn.execute(update(table).where(c[key] == row[0]).values(**changed))
                    done += 1
            last = rows[-1][0]
        if progress is not None:
            progress(done)


def rotate(store: Any, *, batch: int = 500, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Re-encrypt events and sessions under the store's current key; return how many rows changed per table."""
    from ..store.schema import events, sessions
    from ..store.sql import SQLStore

    encryption = getattr(store, "encryption", None)
    if not isinstance(store, SQLStore) or encryption is None or encryption.kid is None \
            or not encryption.encrypt_writes:
        raise StoreError("keys rotate needs a SQL store with encryption enabled "
                         "(security.encryption.enabled and the new key in TELEMETRY_ENCRYPTION_KEY, "
                         "the old ones in security.encryption.old_keys)")
    kid = encryption.kid
    return {"events": _rotate_table(store, events, "event_id", (*_TEXT, "metadata"), kid, batch, progress),
            "sessions": _rotate_table(store, sessions, "id", ("label", "metadata"), kid, batch, progress)}
