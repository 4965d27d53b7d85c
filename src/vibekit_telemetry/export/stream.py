"""Exports streamed as bytes (an HTTP download) instead of written to a file: the same writers, constant memory.

The writers push bytes into a sink; a response pulls them. The writer runs on its own thread into a
small bounded queue, so at most a few chunks are held whatever the export's size, and a client that
stops reading stops the writer (it is told at its next write, or after STALL_S without progress).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from typing import Any, Final

from ..errors import ValidationError
from ..query import QueryFilter, SessionFilter
from ..store.base import EventIterable, Session
from .exports import _write_text
from .records import SCHEMA_VERSION, SESSION_COLUMNS, session_row
from .writers import CHUNK, Progress, chunked, write_csv_rows

logger = logging.getLogger("vibekit_telemetry.export")

STREAM_FORMATS: Final = {"events": ("json", "ndjson", "csv"), "sessions": ("json", "csv")}
MEDIA_TYPES: Final = {"json": "application/json", "ndjson": "application/x-ndjson",
                      "csv": "text/csv; charset=utf-8"}
CHUNK_BYTES: Final = 256 * 1024  # bytes gathered before a chunk is handed to the reader
QUEUE_CHUNKS: Final = 4          # chunks the writer may run ahead of the reader: the memory bound
STALL_S: Final = 300.0           # a reader that takes nothing for this long has gone: the writer stops
_SESSION_PAGE: Final = 2000
_DONE: Final = object()


class _Cancelled(Exception):
    """The reader went away: the writer thread stops at its next write."""


class _QueueSink:
    """A Sink handing CHUNK_BYTES pieces to a bounded queue (blocks while the reader is behind)."""

    def __init__(self, out: queue.Queue[object], stop: threading.Event) -> None:
        self.out, self.stop = out, stop
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        """Gather bytes; pass them on a chunk's worth at a time.

        A writer may hand over a whole page at once (thousands of rows, megabytes): it is cut into
        CHUNK_BYTES pieces, so the queue still bounds how far the writer runs ahead of the reader.
        """
        view = memoryview(data)
        while self.size + len(view) >= CHUNK_BYTES:
            take = CHUNK_BYTES - self.size
            self.parts.append(bytes(view[:take]))
            self.size += take
            view = view[take:]
            self._hand_over()
        if len(view):
            self.parts.append(bytes(view))
            self.size += len(view)
        return len(data)

    def close(self) -> None:
        """Pass on what is left."""
        if self.parts:
            self._hand_over()

    def _hand_over(self) -> None:
        chunk = b"".join(self.parts)
        self.parts, self.size = [], 0
        put(self.out, chunk, self.stop)


def put(out: queue.Queue[object], item: object, stop: threading.Event) -> None:
    """Put item, waiting while the queue is full; _Cancelled once the reader is gone or stalled."""
    deadline = time.monotonic() + STALL_S
    while True:
        if stop.is_set():
            raise _Cancelled
        try:
            out.put(item, timeout=0.5)
            return
        except queue.Full:
            if time.monotonic() > deadline:
                stop.set()
                raise _Cancelled from None


class ByteStream:
    """The chunks of an export written on its own thread; close() stops the writer (the reader is gone)."""

    def __init__(self, chunks: Iterator[bytes], stop: threading.Event) -> None:
        self._chunks, self._stop = chunks, stop

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        """Stop the writer at its next write, whichever thread is reading (safe while a read waits)."""
        self._stop.set()


def stream_bytes(write: Callable[[_QueueSink], Any], name: str = "export") -> ByteStream:
    """Run write(sink) on its own thread; return a ByteStream of the bytes it writes, a chunk at a time."""
    stop = threading.Event()
    return ByteStream(_stream_chunks(write, name, stop), stop)


def _stream_chunks(write: Callable[[_QueueSink], Any], name: str, stop: threading.Event) -> Iterator[bytes]:
    out: queue.Queue[object] = queue.Queue(maxsize=QUEUE_CHUNKS)

    def produce() -> None:
        sink = _QueueSink(out, stop)
        try:
            write(sink)
            sink.close()
            put(out, _DONE, stop)
        except _Cancelled:
            return
        except Exception as exc:  # handed to the reader, which raises it (the response ends short)
            try:
                put(out, exc, stop)
            except _Cancelled:
                logger.warning("%s stopped: %s", name, exc)

    thread = threading.Thread(target=produce, name=f"vibekit-{name}", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = out.get(timeout=1.0)
            except queue.Empty:
                if thread.is_alive() or not out.empty():
                    continue
                raise RuntimeError(f"{name}: the writer stopped (stalled for {STALL_S:.0f} s)") from None
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()  # the reader is done (or gone): unblock and end the writer


def write_sessions_json(sessions: Iterable[Session], sink: Any, header: dict[str, Any],
                        progress: Progress | None = None) -> int:
    """Write {"export": header, "sessions": [...], "counts": {...}}, one session per line, as write_json does events."""
    sink.write(b'{"export": ' + json.dumps(header, ensure_ascii=False).encode() + b', "sessions": [\n')
    count = 0
    for chunk in chunked(sessions, CHUNK):
        body = ",\n".join(json.dumps(s.to_dict(), ensure_ascii=False, separators=(",", ":")) for s in chunk)
        sink.write((b",\n" if count else b"") + body.encode("utf-8"))
        count += len(chunk)
        if progress:
            progress(count)
    sink.write(b'\n], "counts": ' + json.dumps({"sessions": count}).encode() + b"}\n")
    return count


def _header(fmt: str, table: str, filter_: SessionFilter) -> dict[str, Any]:
    wanted = {k: v for k, v in asdict(filter_).items() if v not in (None, [], {}, 0)}
    return {"tool": "vibekit-telemetry", "schema_version": SCHEMA_VERSION, "format": fmt, "table": table,
            "exported_at": int(time.time() * 1000), "filter": wanted}


def iter_sessions(store: Any, filter_: SessionFilter) -> Iterator[Session]:
    """The filter's sessions in its sort order, a page at a time, up to its limit."""
    left = filter_.limit
    offset = filter_.offset
    while left is None or left > 0:
        size = _SESSION_PAGE if left is None else min(_SESSION_PAGE, left)
        page = store.get_sessions(replace(filter_, limit=size, offset=offset))
        yield from page
        if len(page) < size:
            return
        offset += len(page)
        if left is not None:
            left -= len(page)


def check_stream(store: Any, table: str, fmt: str) -> None:
    """Refuse, before any byte is sent, an export stream_export could not write (ValidationError)."""
    if table not in STREAM_FORMATS:
        raise ValidationError("what", "events or sessions", table)
    if fmt not in STREAM_FORMATS[table]:
        raise ValidationError("format", f"for {table} one of " + ", ".join(STREAM_FORMATS[table]), fmt)
    if table == "events" and not isinstance(store, EventIterable):
        raise ValidationError("store", "a store that streams events (iter_events)", type(store).__name__)


def stream_export(store: Any, table: str, fmt: str, filter_: QueryFilter | SessionFilter) -> ByteStream:
    """Yield the events (QueryFilter) or sessions (SessionFilter) of the filter in fmt, as `telemetry export` would.

    Events as JSON are `{"export": …, "events": […], "counts": …}` (what `telemetry import` reads), or
    NDJSON, or CSV, written by export's own table writer; sessions as CSV (export's session rows) or
    JSON (`"sessions"` instead of `"events"`). The filter's order and limit are kept (a dashboard
    downloads what it shows, newest first).
    """
    check_stream(store, table, fmt)

    def write(sink: _QueueSink) -> None:
        if isinstance(filter_, SessionFilter):
            sessions = iter_sessions(store, filter_)
            if fmt == "csv":
                write_csv_rows(SESSION_COLUMNS, map(session_row, sessions), sink)
            else:
                write_sessions_json(sessions, sink, _header(fmt, table, filter_))
            return
        # Events: the very function `telemetry export` writes a table with (exports.py), so a download
        # and an export of the same filter are the same bytes whatever the writers become.
        _write_text(store, fmt, "events", filter_, sink, pretty=False, delimiter=",", header=True, progress=None)

    if (table == "sessions") != isinstance(filter_, SessionFilter):
        raise ValidationError("filter", f"a {'SessionFilter' if table == 'sessions' else 'QueryFilter'}",
                              type(filter_).__name__)
    return stream_bytes(write, f"{table}-download")
