"""export/stream.py, which the dashboard's downloads go through: bounded memory, and a reader that leaves stops it."""

from __future__ import annotations

import threading

import pytest

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.export import stream
from vibekit_telemetry.query import QueryFilter, SessionFilter
from vibekit_telemetry.store import MemoryStore


def test_the_writer_runs_at_most_a_few_chunks_ahead_and_stops_when_the_reader_leaves() -> None:
    written = 0
    finished = threading.Event()

    def write(sink: stream._QueueSink) -> None:
        nonlocal written
        try:
            for _ in range(10_000):  # 2.5 GB if it were all produced: it must not be
                sink.write(b"x" * stream.CHUNK_BYTES)
                written += 1
        finally:
            finished.set()

    chunks = stream.stream_bytes(write, "test")
    assert len(next(chunks)) == stream.CHUNK_BYTES
    # However long the reader dawdles, the writer is held by the queue: the first chunk read, QUEUE_CHUNKS
    # queued, one in the writer's hand.
    assert not finished.wait(0.5)
    assert written <= stream.QUEUE_CHUNKS + 2
    chunks.close()  # the client went away
    assert finished.wait(10), "the writer thread kept running after its reader left"
    assert written <= stream.QUEUE_CHUNKS + 3


def test_a_writer_error_reaches_the_reader() -> None:
    def write(sink: stream._QueueSink) -> None:
        sink.write(b"partial")
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        b"".join(stream.stream_bytes(write, "test"))


@pytest.mark.parametrize(("table", "fmt", "field"), [("rows", "csv", "what"), ("sessions", "ndjson", "format"),
                                                     ("events", "xml", "format")])
def test_unknown_tables_and_formats_are_refused_before_any_byte(table: str, fmt: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        stream.stream_export(MemoryStore(), table, fmt, QueryFilter())
    assert info.value.field == field


def test_sessions_stream_in_their_sort_order_past_a_page() -> None:
    from vibekit_telemetry.events import TelemetryEvent

    store = MemoryStore()
    store.initialize()
    total = stream._SESSION_PAGE + 5
    store.store_batch([TelemetryEvent("start", "claude", session_id=f"s{n:05d}", timestamp=1_700_000_000_000 + n)
                       for n in range(total)])
    text = b"".join(stream.stream_export(store, "sessions", "csv", SessionFilter(order="asc"))).decode()
    lines = text.splitlines()
    assert len(lines) == total + 1 and lines[1].startswith('"s00000"') and lines[-1].startswith(f'"s{total - 1:05d}"')
    limited = b"".join(stream.stream_export(store, "sessions", "csv", SessionFilter(limit=3))).decode()
    assert [line.split(",")[0] for line in limited.splitlines()[1:]] == [f'"s{n:05d}"' for n in (total - 1, total - 2,
                                                                                                  total - 3)]
