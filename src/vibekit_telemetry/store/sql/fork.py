"""The SQL stores' fork hooks: registered once per process, over every open SQLStore (not once per store).

A fork must not land inside one of SQLite's calls on another thread: SQLite's global mutexes would be
copied held and the child's first SQLite call would hang. Writes, upkeep and maintenance hold the
store's lock, which a fork waits for; reads run on pooled connections outside it (a reader never
waits for the writer), so they pass the reader gate instead, which a fork closes and waits to drain.
"""

from __future__ import annotations

import os
import threading
import time
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

    No lock on the way in or out: each thread counts its own entries in a dict under its thread id
    (one dict store each way, atomic under the GIL), registering before it checks for a fork, while
    a fork says so before it looks for readers; so either the fork sees the reader or the reader sees
    the fork and steps back out to wait. A thread already inside (a read within a read) passes even
    during a fork, and a fork from a thread inside a read does not wait for itself. enter() and
    leave() are called on the same thread (a SQLAlchemy Connection is used by one thread).
    """

    def __init__(self) -> None:
        self._depth: dict[int, int] = {}  # per thread id: its entries under way (only that thread writes it)
        self._closed = False
        self._opened = threading.Event()  # set when the fork is over (a new one per fork)
        self._drained = threading.Event()  # set by a reader leaving during a fork

    def enter(self) -> int:
        """Enter the shared section (waiting while a fork is under way); return the token leave() takes."""
        me = threading.get_ident()
        depth = self._depth
        entries = depth.get(me, 0)
        depth[me] = entries + 1
        while not entries and self._closed:  # a fork is under way: step back out until it is over
            del depth[me]
            opened = self._opened
            self._drained.set()
            opened.wait()
            depth[me] = 1
        return me

    def leave(self, token: int) -> None:
        """Leave the shared section entered with enter() on this thread."""
        depth = self._depth
        entries = depth.get(token, 0) - 1
        if entries > 0:
            depth[token] = entries
        else:
            depth.pop(token, None)  # (absent: entered before a fork, in a thread the child does not have)
        if self._closed:
            self._drained.set()

    def close(self, timeout: float) -> bool:
        """Stop new reads and wait until those under way end (but the caller's own); False on timeout."""
        me = threading.get_ident()
        self._opened = threading.Event()  # before closing: a reader that sees the fork waits on this one
        self._closed = True
        deadline = time.monotonic() + timeout
        while True:
            self._drained.clear()
            if not any(thread != me for thread in list(self._depth)):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self._drained.wait(left):
                return not any(thread != me for thread in list(self._depth))

    def open(self) -> None:
        """Let reads in again (in the parent after the fork)."""
        self._closed = False
        self._opened.set()

    def reset_in_child(self) -> None:
        """In a forked child: only the forking thread exists (its own entries stay); new events."""
        me = threading.get_ident()
        own = self._depth.get(me, 0)
        self._depth = {me: own} if own else {}
        self._closed = False
        self._opened, self._drained = threading.Event(), threading.Event()


READS = ReaderGate()


class GatedConnection(Connection):
    """A Connection inside the reader gate from checkout to close (the pool's reset and return included)."""

    _gate_token: int | None = None

    def __init__(self, engine: Engine, connection: Any = None, _has_events: bool | None = None,
                 _allow_revalidate: bool = True, _allow_autobegin: bool = True) -> None:
        # Connection's own signature, called directly (not super() with *args): this runs once per read.
        token = READS.enter()
        try:
            Connection.__init__(self, engine, connection, _has_events, _allow_revalidate, _allow_autobegin)
        except BaseException:
            READS.leave(token)
            raise
        self._gate_token = token

    def close(self) -> None:
        """Return the connection to the pool, then leave the reader gate."""
        try:
            Connection.close(self)
        finally:
            token = self._gate_token
            if token is not None:
                self._gate_token = None
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
