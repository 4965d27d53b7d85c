"""create_event_stream and create_batcher on a real Telemetry and SQLite file."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError


def test_event_stream_yields_live_committed_events_matching_the_filter(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        stream = t.create_event_stream({"category": "claude", "event_type": ["start", "end"]})
        sid = t.track_start("claude", "code", "hi")
        t.track_stream(sid, "not this one")
        t.track_start("codex", "code", "nor this")
        t.track_end(sid)
        assert t.flush()
        got = [stream.get(timeout=5), stream.get(timeout=5)]
        assert [(e.event_type, e.session_id) for e in got if e] == [("start", sid), ("end", sid)]
        assert stream.get(timeout=0.05) is None
        stream.close()
        assert list(stream) == []


def test_event_stream_as_async_iterator(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        stream = t.create_event_stream({"session_id": "s-1"})

        async def first_two() -> list[str]:
            out = []
            async for event in stream:
                out.append(event.event_type)
                if len(out) == 2:
                    break
            return out

        def produce() -> None:
            t.track({"event_type": "start", "session_id": "s-1", "agent_type": "claude"})
            t.track({"event_type": "start", "session_id": "s-2", "agent_type": "claude"})
            t.track({"event_type": "end", "session_id": "s-1"})

        threading.Timer(0.05, produce).start()
        assert asyncio.run(asyncio.wait_for(first_two(), 10)) == ["start", "end"]
        stream.close()


def test_event_stream_is_bounded_and_checks_its_filter(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        with t.create_event_stream(buffer_size=2) as stream:
            t.track_batch([{"event_type": "start", "session_id": f"s{i}", "agent_type": "a"} for i in range(5)])
            assert t.flush()
            assert stream.dropped == 3 and [stream.get(0).session_id, stream.get(0).session_id] == ["s3", "s4"]
        with pytest.raises(ValidationError, match=r"filter\.colour"):
            t.create_event_stream({"colour": "red"})


def test_batcher_sends_full_batches_and_the_rest_on_close(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        batcher = t.create_batcher(batch_size=3, flush_interval=60_000, max_retries=2)
        for i in range(4):
            batcher.add({"event_type": "start", "session_id": f"s{i}", "agent_type": "claude"})
        assert batcher.sent == 3  # the full batch is committed when add() returns
        assert len(t.query()) == 3
        assert batcher.close() and batcher.sent == 4 and len(t.query()) == 4
        with pytest.raises(ValidationError, match="closed"):
            batcher.add({"event_type": "start", "session_id": "late", "agent_type": "claude"})


def test_an_add_racing_close_is_either_sent_or_refused_never_left_behind(tmp_path: Path) -> None:
    accepted: list[str] = []

    def add_until_closed(batcher: Any, go: threading.Event, name: str) -> None:
        go.wait()
        for i in range(1_000_000):
            try:
                batcher.add({"event_type": "start", "session_id": f"{name}-{i}", "agent_type": "claude"})
            except ValidationError:
                return
            accepted.append(f"{name}-{i}")

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, so an add() is often paused between its steps
    try:
        with Telemetry(db_path=str(tmp_path / "t.db")) as t:
            for round_ in range(100):
                batcher = t.create_batcher(batch_size=100_000, flush_interval=60_000, max_retries=0)
                go = threading.Event()
                threads = [threading.Thread(target=add_until_closed, args=(batcher, go, f"r{round_}w{w}"))
                           for w in range(3)]
                for thread in threads:
                    thread.start()
                go.set()
                while len(accepted) < 50 * (round_ + 1):
                    time.sleep(0)
                assert batcher.close()
                for thread in threads:
                    thread.join(10)
            assert t.flush()
            stored = {s.id for s in t.get_sessions(limit=1_000_000)}
    finally:
        sys.setswitchinterval(previous)
    assert stored == set(accepted)


def test_batcher_flushes_on_its_interval_and_async(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        batcher = t.create_batcher(batch_size=1000, flush_interval=20, max_retries=0)
        stream = t.create_event_stream()
        asyncio.run(batcher.add_async({"event_type": "start", "session_id": "s", "agent_type": "claude"}))
        event = stream.get(timeout=10)  # sent by the interval, not by a full batch or close()
        assert event is not None and event.session_id == "s"
        batcher.close()


def test_batcher_refuses_bad_settings_and_counts_bad_batches(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        with pytest.raises(ValidationError, match="batch_size"):
            t.create_batcher(batch_size=0)
        with t.create_batcher(batch_size=2) as batcher:
            batcher.add({"event_type": "nope", "session_id": "s"})
            batcher.add({"event_type": "start", "session_id": "s", "agent_type": "claude"})
            assert batcher.invalid == 2 and batcher.failed == 2 and not batcher.flush()
