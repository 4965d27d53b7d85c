"""The safe horizon of PostgreSQL's change log: the highest position below which no row can still appear.

Several writer processes (replicas) take `events.seq` values from one sequence and commit in any
order: a transaction holding 1..100 may commit after one holding 101..200. A follower that read up
to 200 in between would never see 1..100. So followers read only up to the *safe horizon*.

How it is found, without touching the write path: every transaction that inserts events holds a
RowExclusiveLock on `events` from before it takes its first seq value until it ends. Read the
sequence's last value L, then the transactions holding that lock W (in that order). Every
transaction that took a value <= L already held the lock when L was read, so it is in W or has
ended. Once every transaction of W has ended (committed or rolled back), every row <= L that will
ever exist is visible: L is safe. Each call checks the earlier candidates (L, W) and adds one; under
constant load a candidate settles one transaction duration later, so followers lag by about one
commit. Transactions of other databases or tables are not in W: a long transaction elsewhere never
holds followers back (a long one that writes events does, which is the point).

This relies on the identity sequence handing values out one at a time (CACHE 1, as migration 0009
creates it): with a cache, a session could later use a value it took before L without holding
the lock meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import Final

from sqlalchemy import Connection, Engine

logger = logging.getLogger("vibekit_telemetry")

_SEQUENCE_SQL: Final = "SELECT pg_get_serial_sequence('events', 'seq')"
_WRITERS_SQL: Final = ("SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
                       "AND relation = 'events'::regclass AND mode = 'RowExclusiveLock' "
                       "AND pid <> pg_backend_pid()")
# Candidates kept at most (each is one (L, W) pair); more would only settle later ones sooner.
_MAX_PENDING: Final = 64
# A new process's first horizon waits this long for the transactions in flight to end.
FIRST_WAIT_S: Final = 5.0


class Horizon:
    """One store's safe horizon: candidates (L, writers) settled as their writers end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._safe: int | None = None
        self._pending: deque[tuple[int, frozenset[str]]] = deque()
        self._sequence: str | None = None

    def _observe(self, conn: Connection) -> int | None:
        """Read L then W; settle what can be; return the safe position (None: nothing settled yet)."""
        if self._sequence is None:
            self._sequence = str(conn.exec_driver_sql(_SEQUENCE_SQL).scalar_one())
        # Two statements, in this order (L before W): see the module docstring.
        last = conn.exec_driver_sql("SELECT pg_sequence_last_value(%(s)s::regclass)",
                                    {"s": self._sequence}).scalar()
        last = int(last or 0)
        writers = frozenset(str(row[0]) for row in conn.exec_driver_sql(_WRITERS_SQL))
        with self._lock:
            settled = [cand for cand, waited in self._pending if not waited & writers]
            if settled:
                top = max(settled)
                self._safe = max(self._safe or 0, top)
                while self._pending and self._pending[0][0] <= top:
                    self._pending.popleft()
            if not writers:
                self._safe = max(self._safe or 0, last)
                self._pending.clear()
            elif len(self._pending) < _MAX_PENDING and (not self._pending or self._pending[-1][0] < last):
                self._pending.append((last, writers))
            return self._safe

    def safe_position(self, engine: Engine) -> int:
        """Return the highest position every row at or below which is committed (or never will be)."""
        deadline = time.monotonic() + FIRST_WAIT_S
        with engine.connect() as conn:
            while True:
                safe = self._observe(conn)
                conn.rollback()  # no snapshot held between rounds
                if safe is not None:
                    return safe
                if time.monotonic() > deadline:
                    # Writers never paused in 5 s (not seen in practice): fall back to the newest
                    # committed row, as before horizons; a row committing late below it may be missed.
                    top = int(conn.exec_driver_sql("SELECT COALESCE(MAX(seq), 0) FROM events").scalar_one())
                    logger.warning("change log: a transaction writing events stayed open %.0f s; following "
                                   "from the newest committed position %d for now", FIRST_WAIT_S, top)
                    return top
                time.sleep(0.01)


_HORIZONS: weakref.WeakKeyDictionary[Engine, Horizon] = weakref.WeakKeyDictionary()
_HORIZONS_LOCK = threading.Lock()


def horizon_of(engine: Engine) -> Horizon:
    """The Horizon of a store's engine (one per engine, so every follower of the store shares it)."""
    with _HORIZONS_LOCK:
        found = _HORIZONS.get(engine)
        if found is None:
            found = _HORIZONS[engine] = Horizon()
        return found
