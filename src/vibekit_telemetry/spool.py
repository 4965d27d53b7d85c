"""The local spool: processed batches a remote primary store could not take, kept in order until it returns."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .events import PUBLIC_FIELDS, TelemetryEvent

_SCHEMA = """CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL
)"""


def _encode(event: TelemetryEvent) -> str:
    body: dict[str, Any] = {name: getattr(event, name) for name in PUBLIC_FIELDS if name not in ("metadata", "context")}
    # The chain already encoded metadata and context once: keep that text rather than encode again.
    body["metadata_json"], body["context_json"] = event.metadata_json, event.context_json
    return json.dumps(body, separators=(",", ":"))


def _decode(text: str) -> TelemetryEvent:
    body = json.loads(text)
    metadata_json, context_json = body.pop("metadata_json", None), body.pop("context_json", None)
    event = TelemetryEvent(**body)
    event.metadata = json.loads(metadata_json) if metadata_json else None
    event.context = json.loads(context_json) if context_json else None
    event.metadata_json, event.context_json = metadata_json, context_json
    return event


class Spool:
    """A bounded FIFO of processed events in a SQLite file (or in memory when persist is False).

    Only the writer thread appends and replays; the lock covers health readers on other threads.
    Replay is at-least-once from here and exactly once in the store, which skips known event ids.
    """

    def __init__(self, path: str | os.PathLike[str] | None, max_events: int) -> None:
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        if path is not None:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self.dropped_full = 0
        self.spooled = 0
        self.replayed = 0
        self._depth = self._count()

    def _count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM spool").fetchone()[0])

    def depth(self) -> int:
        """Return how many events wait in the spool."""
        return self._depth

    def append(self, events: Sequence[TelemetryEvent]) -> int:
        """Spool events in order; return how many did not fit (dropped, counted in dropped_full)."""
        with self._lock:
            room = max(0, self.max_events - self._depth)
            taken = list(events[:room])
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT INTO spool (event_id, body) VALUES (?, ?)",
                                       [(e.event_id or "", _encode(e)) for e in taken])
            self._depth += len(taken)
            self.spooled += len(taken)
            lost = len(events) - len(taken)
            self.dropped_full += lost
            return lost

    def peek(self, limit: int) -> tuple[int, list[TelemetryEvent]]:
        """Return the oldest `limit` events and the last sequence number among them (0 when empty)."""
        with self._lock:
            rows = self._conn.execute("SELECT seq, body FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        if not rows:
            return 0, []
        return int(rows[-1][0]), [_decode(body) for _, body in rows]

    def remove_through(self, seq: int) -> None:
        """Forget every event up to sequence number seq (they are in the primary store now)."""
        with self._lock:
            with self._conn:
                self._conn.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
            before = self._depth
            self._depth = self._count()
            self.replayed += max(0, before - self._depth)

    def status(self) -> dict[str, Any]:
        """The spool's part of the health report."""
        return {"path": self.path, "depth": self._depth, "capacity": self.max_events, "spooled": self.spooled,
                "replayed": self.replayed, "dropped_full": self.dropped_full}

    def close(self) -> None:
        """Close the file; what is spooled stays for the next start."""
        with self._lock:
            self._conn.close()
