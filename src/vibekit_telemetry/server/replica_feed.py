"""Live streams across replicas: each replica's hub delivers the events committed by any replica.

With several `telemetry api` replicas on one PostgreSQL, a dashboard connected to replica A must see
the events posted to replica B. Each replica's feed thread:

- listens on the store's commit-notice channel (PostgreSQL LISTEN/NOTIFY, store/sql/cluster.py);
- after its own writer commits (`event:tracked`), sends one small notice (who committed; NOTIFY
  payloads are capped at 8 kB, so never the events themselves);
- on a notice, its own commits, or every `idle_read_s` in case a notice was missed (the listener
  reconnecting), reads what was committed after its position through the change log, up to the
  safe horizon (store/sql/changelog.py), and publishes it to the hub. For a second after a notice it
  keeps reading every `tick_s`, since rows below the horizon may still be committing.

So the hub is fed from the change log alone, the replica's own events included (the hub does not
also listen to `event:tracked`): every event is delivered once, in position order, whichever
replica took it. Without subscribers the feed only moves its position to the horizon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Final

from ..store.base import ChangeLog, CommitNotices

if TYPE_CHECKING:
    from ..service import Telemetry
    from .streams import StreamHub

logger = logging.getLogger("vibekit_telemetry.server")

READ_LIMIT: Final = 500


class ReplicaFeed:
    """Publish every replica's committed events to this replica's StreamHub (a thread; start/stop)."""

    def __init__(self, store: Any, hub: StreamHub, *, tick_s: float = 0.05, busy_s: float = 1.0,
                 idle_read_s: float = 2.0) -> None:
        self.store, self.hub = store, hub
        self.tick_s, self.busy_s, self.idle_read_s = tick_s, busy_s, idle_read_s
        self.origin = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.position: int | None = None
        self.published = 0
        self.notices_received = 0
        self.errors = 0
        self.last_error: str | None = None
        self._local = threading.Event()
        # The writer thread wakes the feed thread through this pair (it sleeps on it and the database
        # socket). Socket objects, not raw fds: a late write after close fails instead of hitting a reused fd.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._channel: Any = None

    def on_local_commit(self, _event: object = None) -> None:
        """On the writer thread (`events:tracked`): this replica committed; the feed thread takes it from here."""
        if not self._local.is_set():  # once per wake-up, not once per event
            self._local.set()
            with contextlib.suppress(OSError):  # full: a wake-up is already waiting; closed: stopping
                self._wake_w.send(b"x")

    def start(self) -> None:
        """Start the feed thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="vibekit-telemetry-replica-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close the channel."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        """Position, events published, notices received and errors (for health)."""
        return {"origin": self.origin, "position": self.position, "published": self.published,
                "notices": self.notices_received, "errors": self.errors, "last_error": self.last_error}

    # -- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        busy_until = next_read = last_local = last_read = 0.0
        delay = 0.5
        while not self._stopping.is_set():
            try:
                if self._channel is None:
                    self._channel = self.store.commit_notices()
                    next_read = 0.0  # catch up on what committed while the channel was down
                if self.position is None:  # start at the horizon: what commits from now on
                    self.position = self.store.committed_position()
                # Local commits are taken at most once per tick_s: a loaded writer commits 150+ times a
                # second, and each take was a NOTIFY and a read of the change log (or of the horizon),
                # which cost this thread as much CPU and GIL as the writer's own work (bench/RESULTS.md,
                # session 5). Within a tick of the last take, only notices wake it early.
                early = last_local + self.tick_s - time.monotonic()
                if early > 0:
                    notices = self._channel.wait(early, None)
                else:
                    notices = self._channel.wait(self.tick_s, self._wake_r.fileno())
                with contextlib.suppress(OSError):  # the flag, not the byte, says a commit is waiting
                    self._wake_r.recv(4096)
                now = time.monotonic()
                if any(origin != self.origin for origin in notices):
                    self.notices_received += 1
                    busy_until = now + self.busy_s
                if self._local.is_set() and now >= last_local + self.tick_s:
                    self._local.clear()
                    self._channel.notify(self.origin)
                    last_local = now
                    busy_until = now + self.busy_s
                # At most one read per tick too: this replica's own notices and other replicas' wake it
                # as well, and a read is 3-4 statements (the horizon's among them).
                if (now < busy_until or now >= next_read) and now >= last_read + self.tick_s:
                    self._read()
                    last_read = now
                    next_read = now + self.idle_read_s
                delay = 0.5
            except Exception as exc:  # the database went away: reconnect with backoff, never die
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log = logger.warning if self.errors == 1 else logger.debug
                log("live-stream replica feed: %s; reconnecting", self.last_error)
                self._close_channel()
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
        self._close_channel()
        self._wake_w.close()
        self._wake_r.close()

    def _read(self) -> None:
        """Publish what was committed after the position (or, with no subscribers, skip to the horizon)."""
        if not self.hub.subscribers:
            self.position = self.store.committed_position()
            return
        while True:
            assert self.position is not None
            rows = self.store.read_committed(self.position, READ_LIMIT)
            for position, event in rows:
                self.hub.publish(event)
                self.position = position
            self.published += len(rows)
            if len(rows) < READ_LIMIT or self._stopping.is_set():
                return

    def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()


def replica_feed_for(telemetry: Telemetry, hub: StreamHub) -> ReplicaFeed | None:
    """A feed when the primary store is shared by replicas (PostgreSQL); None otherwise (SQLite, memory)."""
    runtime = telemetry.runtime
    if runtime is None:
        return None
    try:
        store = runtime.store
    except Exception:  # no queryable store: the hub has nothing to follow either way
        return None
    if not isinstance(store, CommitNotices) or not isinstance(store, ChangeLog):
        return None
    try:
        channel = store.commit_notices()
    except Exception as exc:  # the database is down right now: the feed connects once it is back
        logger.warning("live-stream replica feed: %s; retrying in the background", exc)
        return ReplicaFeed(store, hub)
    if channel is None:  # a store on one host: the hub follows the writer directly
        return None
    feed = ReplicaFeed(store, hub)
    feed._channel = channel
    return feed
