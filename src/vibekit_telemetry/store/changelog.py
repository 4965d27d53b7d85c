"""The change log exporters follow: committed events by position, and each exporter's persisted cursor.

A position orders events by commit and is never handed out twice:

- SQLite: the events rowid. One writer at a time, so rowids grow in commit order. SQLite gives a new
  row max(rowid) + 1, so deleting the newest rows would let new rows take their rowids again: whoever
  deletes rows calls `clamp_cursors` in the same transaction, lowering every cursor to max(rowid), and
  a follower lowers its own in-memory position the same way (see exporters/follower.py). VACUUM keeps
  the rowids of this table (SQLite's transfer optimisation, checked on 3.40) although the SQLite docs
  reserve the right to renumber tables without an INTEGER PRIMARY KEY.
- PostgreSQL: events.seq, an identity column (migration 0009) with a unique index. Writers in
  several processes (replicas) can commit seq values out of order (a transaction that took 101..200
  may commit before one holding 1..100), so followers read only up to the *safe horizon*, the
  highest position no row can still appear below (store/sql/horizon.py), and `committed_position`
  is that horizon. A follower reading in between stops at 0 and takes 1..200 once both committed.
- Memory: an insertion counter (MemoryChangeLog below).

The SQL side lives in store/sql/changelog.py (its SQLite/PostgreSQL differences in the Dialect); the
functions there take the store's Engine and open their own short connections, so an exporter's reads
and cursor saves never hold the writer's lock or its connection.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..events import TelemetryEvent


class MemoryChangeLog:
    """MemoryStore's change log: positions from an insertion counter, cursors in a dict.

    Not locked itself: MemoryStore calls it under its own lock.
    """

    def __init__(self) -> None:
        self._ids: list[str] = []  # the event id at position i + 1
        self._position: dict[str, int] = {}  # an event id's newest position (a re-stored id moves on)
        self._cursors: dict[str, int] = {}

    def append(self, event_ids: Sequence[str]) -> None:
        """Give the events just stored the next positions, in order."""
        for event_id in event_ids:
            self._ids.append(event_id)
            self._position[event_id] = len(self._ids)

    def committed_position(self) -> int:
        """Return the newest position handed out."""
        return len(self._ids)

    def read_committed(self, after: int, limit: int,
                       stored: Mapping[str, TelemetryEvent]) -> list[tuple[int, TelemetryEvent]]:
        """Return up to `limit` stored events above `after`, skipping deleted ones, as private copies."""
        out: list[tuple[int, TelemetryEvent]] = []
        for index in range(max(0, after), len(self._ids)):
            if len(out) >= limit:
                break
            event_id = self._ids[index]
            event = stored.get(event_id)
            if event is not None and self._position.get(event_id) == index + 1:
                out.append((index + 1, replace(event, metadata=copy.deepcopy(event.metadata),
                                               context=copy.deepcopy(event.context))))
        return out

    def position_before(self, timestamp_ms: int, stored: Mapping[str, TelemetryEvent]) -> int:
        """Return the position just below the first stored event stamped at or after `timestamp_ms`."""
        for index, event_id in enumerate(self._ids):
            event = stored.get(event_id)
            if event is not None and self._position.get(event_id) == index + 1 and event.timestamp >= timestamp_ms:
                return index
        return len(self._ids)

    def load_cursor(self, name: str) -> int | None:
        """Return exporter `name`'s position, or None."""
        return self._cursors.get(name)

    def save_cursor(self, name: str, position: int) -> None:
        """Keep exporter `name`'s position (for as long as the process lives)."""
        self._cursors[name] = int(position)

    def cursors(self) -> dict[str, int]:
        """Return every exporter's position by name."""
        return dict(sorted(self._cursors.items()))
