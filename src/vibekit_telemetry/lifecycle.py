"""Process-wide exit and fork hooks, registered once per process however many objects need them.

Each Telemetry (and each BatchWorker) used to register its own atexit and at-fork hooks, which can
never be unregistered: an app creating thousands of instances accumulated them. Here objects join a
weak set; one hook per process walks it.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Protocol


class ForkSafe(Protocol):
    """An object that re-creates its threads and locks in a forked child."""

    def after_fork_in_child(self) -> None:
        """Runs in the child right after fork(), before anything else."""


class ExitFlushed(Protocol):
    """An object that writes what it holds when the interpreter exits."""

    def shutdown_at_exit(self) -> None:
        """Runs once at interpreter exit."""


_fork_safe: weakref.WeakSet[ForkSafe] = weakref.WeakSet()
_exit_flushed: weakref.WeakSet[ExitFlushed] = weakref.WeakSet()
_registered = False
_lock = threading.Lock()


def _ensure_hooks() -> None:
    global _registered
    if _registered:
        return
    with _lock:
        if not _registered:
            atexit.register(_run_exit_hooks)
            os.register_at_fork(after_in_child=_run_fork_hooks)
            _registered = True


def on_fork(obj: ForkSafe) -> None:
    """Call obj.after_fork_in_child() in every forked child while obj lives."""
    _ensure_hooks()
    _fork_safe.add(obj)


def on_exit(obj: ExitFlushed) -> None:
    """Call obj.shutdown_at_exit() at interpreter exit while obj lives."""
    _ensure_hooks()
    _exit_flushed.add(obj)


def forget(obj: object) -> None:
    """Stop calling obj's hooks (after it shut down)."""
    _fork_safe.discard(obj)  # type: ignore[arg-type]
    _exit_flushed.discard(obj)  # type: ignore[arg-type]


def _run_fork_hooks() -> None:
    global _lock
    # The child has one thread: a lock another parent thread held at fork time stays held for ever.
    _lock = threading.Lock()
    for obj in list(_fork_safe):
        obj.after_fork_in_child()


def _run_exit_hooks() -> None:
    for obj in list(_exit_flushed):
        obj.shutdown_at_exit()
