"""The writer process: an SQL store's commits made by a process of its own (`writer_process`, docs/pipeline.md).

In one process the server's event loop (HTTP, JSON, the chain) and the writer thread (the commit) take
turns on one GIL, so a durable acknowledgement costs the loop's time plus the writer's, one after the
other. With a writer process they run on two cores: the parent keeps the store for reads, maintenance
and the text index, and a child started with the store opens a second SQLStore on the same database and
makes every `store_batch` commit.

The protocol, over a private socket pair: the parent sends the batch as a pickled list of each event's
field tuple, the child answers after its commit with (stored, duplicates, [(event_id, reason)],
unindexed) or with the kind and text of the error. So an answer is a committed batch, and an
acknowledgement that waits for it is as durable as one made in-process. A child that dies is started
again on the next batch; the batch in hand fails with TransientStoreError, which the write pipeline
waits out and retries, and event ids make the retry skip what the dead child had committed. The child
exits when the parent's end of the socket closes, also when the parent was killed; it ignores SIGINT
and SIGTERM, which a terminal or a service manager sends to the whole process group.

A subprocess (`python -m vibekit_telemetry.store.sql.writer_process`), not multiprocessing: spawn would
run the application's own main module again in the child, and fork copies a threaded process.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final

from ...errors import DiskFullError, RefusedRowError, StoreError, TransientStoreError
from ...events import TelemetryEvent
from ..base import BatchResult

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .pool import PoolOptions
    from .text_index import TextIndex

logger = logging.getLogger("vibekit_telemetry")

_FIELDS: Final = tuple(f.name for f in fields(TelemetryEvent))
_row = operator.attrgetter(*_FIELDS)
_HEADER: Final = struct.Struct("!I")
_START_TIMEOUT_S: Final = 60.0  # importing the package and opening the store, on a slow or busy machine
# How often a parent waiting for an answer checks that the child still runs.
_ALIVE_CHECK_S: Final = 0.5
# A child answers within busy_timeout_ms (waiting out another process's lock) plus the commit itself; one
# silent past this margin on top is hung (stopped with SIGSTOP, stuck in I/O) and is replaced, so a hung
# child cannot stall ingest for ever. The batch is retried with a new child: its event ids make a commit
# the hung one made after all count as duplicates, never twice.
_ANSWER_MARGIN_S: Final = 60.0
# Error kinds sent by the child, and the typed error the parent raises for each (the write pipeline
# decides by type: wait out and retry, bisect the batch, or count it lost).
_KINDS: Final[dict[str, type[StoreError]]] = {
    "disk_full": DiskFullError, "transient": TransientStoreError, "refused": RefusedRowError, "error": StoreError}


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            raise EOFError("the other end closed the writer socket")
        got += n
    return bytes(buf)


def _recv(sock: socket.socket) -> bytes:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return _recv_exact(sock, size)


def _kind(exc: BaseException) -> str:
    """The error kind the parent turns back into a typed error (see _KINDS)."""
    from ...pipeline import is_data_error, is_disk_full, is_transient

    if is_disk_full(exc):
        return "disk_full"
    if is_transient(exc):
        return "transient"
    if is_data_error(exc):
        return "refused"
    return "error"


class WriterProcess:
    """The parent's end: start the child, send it batches, turn its answers into BatchResults."""

    def __init__(self, spec: dict[str, Any], answer_timeout_s: float | None = None) -> None:
        self.spec = spec  # SQLStore keyword arguments, plus "url_or_path"
        # How long a batch may go unanswered before the child counts as hung (see _ANSWER_MARGIN_S).
        self.answer_timeout_s = (answer_timeout_s if answer_timeout_s is not None
                                 else spec.get("busy_timeout_ms", 5000) / 1000 + _ANSWER_MARGIN_S)
        self.pid: int | None = None
        self.restarts = 0  # children started after the first one died
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._started_once = False
        self._lock = threading.Lock()  # one batch at a time (the writer thread; maintenance never writes here)

    # -- lifecycle -------------------------------------------------------------------------------

    def _start(self) -> socket.socket:
        """Start a child on a new socket pair and wait for it to say the store is open."""
        parent, child = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(child.fileno())], pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, close_fds=True)
        except OSError as exc:
            parent.close()
            child.close()
            raise TransientStoreError(f"cannot start the writer process: {exc}") from exc
        child.close()
        parent.settimeout(_START_TIMEOUT_S)
        try:
            _send(parent, pickle.dumps(self.spec, pickle.HIGHEST_PROTOCOL))
            answer = pickle.loads(_recv(parent))
        except (OSError, EOFError) as exc:
            process.kill()
            process.wait()
            parent.close()
            raise TransientStoreError(f"the writer process did not start (exit {process.returncode}): {exc}") \
                from exc
        parent.settimeout(self.answer_timeout_s)  # a send into a hung child's full socket gives up too
        if answer != "ready":
            process.wait()
            parent.close()
            kind, message = answer
            raise _KINDS.get(kind, StoreError)(f"the writer process could not open the store: {message}")
        if self._started_once:
            self.restarts += 1
        self._started_once = True
        self._process, self._sock, self.pid = process, parent, process.pid
        return parent

    def start(self) -> None:
        """Start the child now (the store opens it with itself, so a bad spec fails at once)."""
        with self._lock:
            if self._sock is None:
                self._start()

    def _lost(self, why: str) -> TransientStoreError:
        """Forget a child that stopped answering; the next batch starts another."""
        process, sock = self._process, self._sock
        self._process, self._sock, self.pid = None, None, None
        code = None
        if process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            code = process.wait()
        if sock is not None:
            sock.close()
        logger.warning("telemetry writer process %s (exit %s); starting another for the next batch", why, code)
        return TransientStoreError(f"the writer process {why} (exit {code}); the batch is retried")

    def close(self, timeout: float = 10.0) -> None:
        """Close the socket (the child finishes its batch and exits); kill it if it does not."""
        with self._lock:
            process, sock = self._process, self._sock
            self._process, self._sock, self.pid = None, None, None
        if sock is not None:
            sock.close()
        if process is not None:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def after_fork(self) -> None:
        """In a forked child: the writer and socket are the parent's; this process starts its own when needed."""
        self._lock = threading.Lock()
        if self._sock is not None:
            # Only this process's copy of the descriptor: the parent's stays open, and the parent's writer
            # still sees its socket close (and exits) when the parent goes, even while this child lives.
            self._sock.close()
        self._process, self._sock, self.pid = None, None, None
        self._started_once = False

    # -- writing ---------------------------------------------------------------------------------

    def store_batch(self, events: Sequence[TelemetryEvent]) -> tuple[BatchResult, int]:
        """Commit a batch in the child: (its result, rows now waiting for the text index)."""
        try:
            payload = pickle.dumps([_row(e) for e in events], pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            # A value no chain step lets through (the encode step checks JSON): refused like a bad row,
            # so the pipeline splits the batch and only that event is lost.
            raise RefusedRowError(f"the writer process cannot take the batch: {exc}") from exc
        with self._lock:
            sock = self._sock if self._sock is not None else self._start()
            try:
                _send(sock, payload)
                answer = self._answer(sock)
            except TimeoutError as exc:  # an OSError too: checked first
                raise self._lost(f"is hung ({exc}); it was killed") from exc
            except (OSError, EOFError) as exc:
                raise self._lost(f"stopped ({type(exc).__name__}: {exc})") from exc
        if answer[0] == "ok":
            _, stored, duplicates, rejected, unindexed = answer
            by_id = {e.event_id: e for e in events} if rejected else {}
            return BatchResult(stored, duplicates, [(by_id[i], reason) for i, reason in rejected]), unindexed
        _, kind, message = answer
        raise _KINDS.get(kind, StoreError)(message)

    def _answer(self, sock: socket.socket) -> Any:
        """Wait for the child's answer, checking now and then that it still runs and is not hung."""
        process = self._process
        deadline = time.monotonic() + self.answer_timeout_s
        while True:
            ready, _, _ = select.select([sock], [], [], _ALIVE_CHECK_S)
            if ready:
                return pickle.loads(_recv(sock))
            if process is not None and process.poll() is not None:
                raise EOFError(f"the writer process exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer in {self.answer_timeout_s:g} s")


class WriterProcessMethods:
    """use_writer_process / writer_process of SQLStore (a mixin), and its commits through the child."""

    if TYPE_CHECKING:
        _remote: WriterProcess | None
        _text: TextIndex | None
        encryption: Any
        url: str
        enable_indexes: bool
        busy_timeout_ms: int
        wal: bool
        text_index: bool
        text_index_rows: int
        text_index_delay_s: float
        pool: PoolOptions | None
        partition: str

        @property
        def engine(self) -> Engine:
            """The store's engine (SQLStore initialises on first use)."""

    def use_writer_process(self, answer_timeout_s: float | None = None) -> int:
        """Make every store_batch commit in a child process of its own (writer_process.py); return its pid.

        Reads, maintenance and the text index stay in this process. Raises StoreError when the child
        cannot open the store. answer_timeout_s: how long a batch may go unanswered before the child is
        replaced as hung (default: busy_timeout_ms plus 60 s).
        """
        self.engine  # noqa: B018 - migrated and open here first, so the child finds the schema at head
        remote = WriterProcess({
            "url_or_path": self.url, "enable_indexes": self.enable_indexes, "busy_timeout_ms": self.busy_timeout_ms,
            "wal": self.wal, "text_index": self.text_index, "text_index_rows": self.text_index_rows,
            "text_index_delay_s": self.text_index_delay_s, "pool": self.pool, "partition": self.partition},
            answer_timeout_s)
        remote.start()
        self._remote = remote
        assert remote.pid is not None
        return remote.pid

    @property
    def writer_process(self) -> WriterProcess | None:
        """The child process that commits batches, when use_writer_process() was called."""
        return self._remote

    def _store_remote(self, remote: WriterProcess, events_: Sequence[TelemetryEvent]) -> BatchResult:
        """Commit in the writer process: encrypted here (the child has no keys), text tail noted here."""
        batch = self.encryption.encrypt_batch(events_) if self.encryption is not None else events_
        result, unindexed = remote.store_batch(batch)
        if self._text is not None:
            self._text.note_unindexed(unindexed)  # this process indexes (scheduler, flush)
        if batch is not events_ and result.rejected:  # report the caller's events, not their ciphertext
            originals = {e.event_id: e for e in events_}
            result.rejected = [(originals[e.event_id], reason) for e, reason in result.rejected]
        return result


# -- the child ---------------------------------------------------------------------------------------

def serve(sock: socket.socket) -> None:
    """The child's loop: open the store the spec names, then commit each batch and answer."""
    from .store import SQLStore

    spec = pickle.loads(_recv(sock))
    try:
        store = SQLStore(spec.pop("url_or_path"), **spec)
        store.initialize()
    except Exception as exc:
        _send(sock, pickle.dumps((_kind(exc), str(exc))))
        return
    _send(sock, pickle.dumps("ready"))
    make = TelemetryEvent
    try:
        while True:
            try:
                rows = pickle.loads(_recv(sock))
            except EOFError:
                return  # the parent closed its end (shut down, or was killed): nothing is in hand
            try:
                result = store.store_batch([make(*row) for row in rows])
            except Exception as exc:
                answer: tuple[Any, ...] = ("error", _kind(exc), str(exc))
            else:
                answer = ("ok", result.stored, result.duplicates,
                          [(e.event_id, reason) for e, reason in result.rejected], store.unindexed_rows())
            _send(sock, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
    finally:
        store.shutdown()


def main() -> None:
    """Entry point of `python -m vibekit_telemetry.store.sql.writer_process FD`."""
    # Ctrl-C in a terminal, or a service manager stopping the whole group, signals the child too: it
    # stops with its parent instead (the socket closes), after the batch in hand, so none is cut short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except (OSError, EOFError):
        pass  # the parent went away mid-answer: it will retry the batch with another child
    finally:
        sock.close()


if __name__ == "__main__":
    main()
