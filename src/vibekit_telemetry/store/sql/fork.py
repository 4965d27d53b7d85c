"""The SQL stores' fork hooks: registered once per process, over every open SQLStore (not once per store)."""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol


class Locked(Protocol):
    """An open store: the lock its writes hold, which a fork waits for (SQLStore)."""

    _lock: Any

# Connections inherited across fork, kept referenced so they are never finalised (closed) in the child.
DISOWNED: list[Any] = []
# Open stores, for the process-wide fork hooks below (registered once, not once per store).
LIVE: weakref.WeakSet[Locked] = weakref.WeakSet()
_HELD: list[Locked] = []
# How long a fork waits for a store's batch under way before going ahead without it (seconds).
_FORK_WAIT_S = 10.0


def _before_fork() -> None:
    """Let each store finish the transaction under way, so no child inherits a connection mid-write.

    A SQLite connection copied mid-transaction keeps the write lock in the child's in-process lock
    table for ever: the child's own new connection would then find the database locked. Waiting
    here (in the parent, bounded) is one batch at most; the child never waits on anything.
    """
    for store in list(LIVE):
        if store._lock.acquire(timeout=_FORK_WAIT_S):
            _HELD.append(store)


def _after_fork_in_parent() -> None:
    while _HELD:
        _HELD.pop()._lock.release()


def _after_fork_in_child() -> None:
    # The forking thread owns these copies and is the one running here: release them, so a store
    # used in the child before after_fork() (which replaces the lock anyway) does not block.
    while _HELD:
        _HELD.pop()._lock.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
