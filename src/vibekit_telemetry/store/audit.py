"""The audit trail's hash chain and record history, shared by the SQL and memory stores.

Each entry's hash covers the previous entry's hash and the entry's own stored text (id, time, actor,
action, target, details, table, record id, old and new values), so changing or deleting any entry
breaks the chain from there on; verify() names the first entries where it breaks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

CHAINED: Final = ("id", "timestamp", "actor", "action", "target", "details", "table_name", "record_id",
                  "old_values", "new_values")
GENESIS: Final = ""


def dumps(value: Any) -> str | None:
    """The stored JSON text of a details / old / new value (None stays None)."""
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def entry_hash(prev_hash: str | None, row: Mapping[str, Any]) -> str:
    """Return sha256(prev_hash | canonical JSON of the row's chained fields) in hex."""
    body = json.dumps([row.get(name) for name in CHAINED], default=str, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash or GENESIS}\n{body}".encode()).hexdigest()


def verify(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Return the chain's problems, rows given in id order ([] when nothing was changed or removed)."""
    problems: list[str] = []
    prev: str | None = None
    started = False
    for row in rows:
        if row.get("hash") is None:
            if started:
                problems.append(f"entry {row['id']}: hash removed")
            continue  # entries from before migration 0010 were never chained
        if started and row.get("prev_hash") != prev:
            problems.append(f"entry {row['id']}: does not follow the entry before it (one was deleted or edited)")
        elif not started and row.get("prev_hash") not in (None, GENESIS):
            problems.append(f"entry {row['id']}: the entries before it were deleted")
        if entry_hash(row.get("prev_hash"), row) != row["hash"]:
            problems.append(f"entry {row['id']}: contents changed after it was written")
        prev, started = row["hash"], True
    return problems


def decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return an audit row for callers: JSON columns decoded, changed_fields listed."""
    out = dict(row)
    for name in ("details", "old_values", "new_values"):
        text = out.get(name)
        out[name] = json.loads(text) if isinstance(text, str) else text
    old, new = out.get("old_values") or {}, out.get("new_values") or {}
    out["changed_fields"] = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) \
        if isinstance(old, dict) and isinstance(new, dict) else []
    return out
