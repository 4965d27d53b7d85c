"""The SQL stores' fork hooks: registered once per process, over every open SQLStore (not once per store).

A fork must not land inside one of SQLite's calls on another thread: SQLite's global mutexes would be
copied held and the child's first SQLite call would hang. Writes, upkeep and maintenance hold the
store's lock, which a fork waits for; reads run on pooled connections outside it (a reader never
waits for the writer), so they pass the reader gate instead, which a fork closes and waits to drain.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol

from sqlalchemy import Connection, Engine


class Locked(Protocol):
    """An open store: the lock its writes hold, which a fork waits for (SQLStore)."""

    _lock: Any

# Connections inherited across fork, kept referenced so they are never finalised (closed) in the child.
DISOWNED: list[Any] = []
# Open stores, for the process-wide fork hooks below (registered once, not once per store).
LIVE: weakref.WeakSet[Locked] = weakref.WeakSet()
_HELD: list[Locked] = []
# How long a fork waits for a store's batch, or for the reads, under way before going ahead without them (seconds).
_FORK_WAIT_S = 10.0


class ReaderGate:
    """A shared section for reads that a fork drains: readers never wait for each other, only for a fork.

    enter() and leave() each hold a plain lock for a counter update (about a microsecond the pair; the
    read itself is not serialised), and enter() waits only while a fork is under way. A thread already
    inside (a read within a read) passes even then, and a fork from a thread inside a read does not wait
    for itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0  # entries under way, nested ones included
        self._depth: dict[int, int] = {}  # per thread id: its entries under way
        self._closed = False
        self._allowed = 0  # while closed: the forking thread's own entries, which it does not wait for
        self._opened = threading.Event()
        self._drained = threading.Event()

    def enter(self) -> int:
        """Enter the shared section (waiting while a fork is under way); return the token leave() takes."""
        me = threading.get_ident()
        while True:
            with self._lock:
                depth = self._depth.get(me, 0)
                if depth or not self._closed:
                    self._depth[me] = depth + 1
                    self._inside += 1
                    return me
                opened = self._opened
            opened.wait()

    def leave(self, token: int) -> None:
        """Leave the shared section entered with enter() (from any thread)."""
        with self._lock:
            depth = self._depth.pop(token, 0) - 1
            if depth > 0:
                self._depth[token] = depth
            if depth >= 0:  # else entered before a fork, in a thread the child does not have
                self._inside -= 1
            if self._closed and self._inside <= self._allowed:
                self._drained.set()

    def close(self, timeout: float) -> bool:
        """Stop new reads and wait until those under way end (but the caller's own); False on timeout."""
        with self._lock:
            self._closed = True
            self._opened, self._drained = threading.Event(), threading.Event()
            self._allowed = self._depth.get(threading.get_ident(), 0)
            if self._inside <= self._allowed:
                return True
            drained = self._drained
        return drained.wait(timeout)

    def open(self) -> None:
        """Let reads in again (in the parent after the fork)."""
        with self._lock:
            self._closed = False
            self._opened.set()

    def reset_in_child(self) -> None:
        """In a forked child: only the forking thread exists; the lock is new (a reader may have held it)."""
        me = threading.get_ident()
        own = self._depth.get(me, 0)
        self._lock = threading.Lock()
        self._depth = {me: own} if own else {}
        self._inside, self._closed, self._allowed = own, False, 0
        self._opened, self._drained = threading.Event(), threading.Event()


READS = ReaderGate()


class GatedConnection(Connection):
    """A Connection inside the reader gate from checkout to close (the pool's reset and return included)."""

    _gate_token: int | None = None

    def __init__(self, engine: Engine, *args: Any, **kwargs: Any) -> None:
        token = READS.enter()
        try:
            super().__init__(engine, *args, **kwargs)
        except BaseException:
            READS.leave(token)
            raise
        self._gate_token = token

    def close(self) -> None:
        """Return the connection to the pool, then leave the reader gate."""
        try:
            super().close()
        finally:
            token, self._gate_token = self._gate_token, None
            if token is not None:
                READS.leave(token)


def gate_reads(engine: Engine) -> Engine:
    """Make every Connection of this engine (connect(), begin()) pass the reader gate; return the engine."""
    # Engine.connect() builds `_connection_cls(engine)`: SQLAlchemy's own seam for a Connection subclass.
    # The writer's raw connection does not pass: it is used under the store's lock only.
    engine._connection_cls = GatedConnection
    return engine


def _before_fork() -> None:
    """Let each store finish the transaction under way, and the reads under way end, before the fork.

    A SQLite connection copied mid-transaction keeps the write lock in the child's in-process lock
    table for ever: the child's own new connection would then find the database locked. A fork inside
    any SQLite call copies SQLite's global mutexes held. Waiting here (in the parent, bounded) is one
    batch or one read at most; the child never waits on anything. Locks first: a writer holding one
    may open a connection (gated) under it, and once the fork holds every lock none can.
    """
    for store in list(LIVE):
        if store._lock.acquire(timeout=_FORK_WAIT_S):
            _HELD.append(store)
    READS.close(_FORK_WAIT_S)


def _after_fork_in_parent() -> None:
    READS.open()
    while _HELD:
        _HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    READS.reset_in_child()
    # The forking thread owns these copies and is the one running here: release them, so a store
    # used in the child before after_fork() (which replaces the lock anyway) does not block.
    while _HELD:
        _HELD.pop()._lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
