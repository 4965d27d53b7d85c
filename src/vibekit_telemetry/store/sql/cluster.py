"""What replicas sharing one PostgreSQL database need from the store: job leases and commit notices.

- Job leases: a scheduled job (retention, exports, alert evaluation...) runs in one replica at a
  time. The first replica to ask takes a session advisory lock for the job on a dedicated
  connection and keeps it for as long as that connection lives, so the job runs once per period in
  the whole deployment, not once per replica. When the holder dies, PostgreSQL ends its session and
  frees the lock, and the next replica to ask takes the job over.
- Commit notices: LISTEN/NOTIFY on a channel of this database and schema. A notice only says "a
  replica committed" (NOTIFY payloads are capped at 8 kB): listeners read the rows themselves
  through the change log (store/sql/changelog.py), up to its safe horizon.

Both are keyed by the schema as well as the database (advisory locks are per database), so
deployments or test runs in different schemas of one database never share a lease or a channel.
SQLite (`Dialect.shared_by_replicas` false) needs neither: every job runs, no notices.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Engine

from .dialect import Dialect

_LEASE_KEY: Final = "hashtextextended(current_schema() || '/vibekit-job/' || %s, 0)"
_CREATE_LOCK: Final = threading.Lock()
_CHANNEL_SQL: Final = "SELECT 'vibekit_' || left(md5(current_database() || '/' || current_schema()), 20)"


def _connector(engine: Engine) -> Callable[[], Any]:
    """A function opening a new autocommit DBAPI connection to the engine's database, outside its pool.

    Outside the pool, so a lease or a listener held for hours never takes one of `pool_size`.
    """
    cargs, cparams = engine.dialect.create_connect_args(engine.url)

    def connect() -> Any:
        conn = engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
        conn.autocommit = True
        return conn

    return connect


class AdvisoryLeases:
    """Cluster-wide job leases held as session advisory locks on one dedicated connection."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: Any = None
        self._held: set[str] = set()
        self._pid = os.getpid()

    def hold(self, name: str) -> bool:
        """Whether this process holds job `name`'s lease now, taking it if no one holds it."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's session holds the locks
                self._conn, self._pid = None, os.getpid()
                self._held.clear()
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self._held.clear()
                if name in self._held:
                    # Locks live as long as the session: if it still answers, the lease is still ours.
                    self._conn.execute("SELECT 1")
                    return True
                row = self._conn.execute(f"SELECT pg_try_advisory_lock({_LEASE_KEY})", (name,)).fetchone()
            except Exception:
                self._discard()  # whatever we held went with the session
                raise
            if row and row[0]:
                self._held.add(name)
                return True
            return False

    def held(self) -> list[str]:
        """The jobs whose lease this process holds."""
        with self._lock:
            return sorted(self._held)

    def close(self) -> None:
        """Give every lease back now (the server ends a closed session a moment later)."""
        with self._lock:
            if self._pid == os.getpid():
                if self._conn is not None and self._held:
                    with contextlib.suppress(Exception):
                        self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._discard()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class NoticeChannel:
    """LISTEN/NOTIFY on this database and schema's channel, on one dedicated connection (one thread)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._conn = connect()
        self.name = str(self._conn.execute(_CHANNEL_SQL).fetchone()[0])
        self._conn.execute(f"LISTEN {self.name}")

    def notify(self, payload: str) -> None:
        """Announce a commit to every listener of the channel (this one included)."""
        self._conn.execute("SELECT pg_notify(%s, %s)", (self.name, payload))

    def wait(self, timeout_s: float, wake_fd: int | None = None) -> list[str]:
        """Return the notices received within timeout_s; return early when `wake_fd` turns readable."""
        if wake_fd is not None:
            # Sleep on the connection's socket and the caller's wake-up pipe at once; notices already
            # read into the connection are collected below either way.
            select.select([self._conn.fileno(), wake_fd], [], [], timeout_s)
            timeout_s = 0.0
        out = [n.payload for n in self._conn.notifies(timeout=timeout_s, stop_after=1)]
        if out:
            out += [n.payload for n in self._conn.notifies(timeout=0.001)]
        return out

    def close(self) -> None:
        """Stop listening (end the session)."""
        with contextlib.suppress(Exception):
            self._conn.close()


class ClusterMixin:
    """SQLStore's replica support: job leases and commit notices (store/base.py JobLeasing, CommitNotices)."""

    sql: Dialect
    _leases: AdvisoryLeases | None = None

    @property
    def engine(self) -> Engine:  # provided by SQLStore
        raise NotImplementedError

    def job_lease(self, name: str) -> bool | None:
        """Whether this process holds scheduled job `name`'s lease among replicas (None: no replicas here)."""
        if not self.sql.shared_by_replicas:
            return None
        with _CREATE_LOCK:  # one lease connection per store, whichever thread asks first
            if self._leases is None:
                self._leases = AdvisoryLeases(_connector(self.engine))
        return self._leases.hold(name)

    def commit_notices(self) -> NoticeChannel | None:
        """A new channel on which replicas announce commits (None where one process writes: SQLite)."""
        if not self.sql.shared_by_replicas:
            return None
        return NoticeChannel(_connector(self.engine))

    def _close_leases(self) -> None:
        """Give the job leases back (shutdown)."""
        if self._leases is not None:
            self._leases.close()
