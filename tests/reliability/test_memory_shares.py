"""memory_limit bounds every place that holds events in memory, not only the writer queue: the events the
sample step holds for keep_errors, and the queues of exporters fed from the bus (no change log). Flooded,
each stays within its share, counts what it drops under `memory_limit`, and nothing crashes."""

from __future__ import annotations

import socket
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.exporters import Backoff, BusFeed, WebhookExporter
from vibekit_telemetry.limits import EXPORTERS_SHARE, SAMPLER_SHARE, SEEN_SHARE, MemoryShares
from vibekit_telemetry.processing.sampling import Sample, session_score
from vibekit_telemetry.store.base import BaseStorageProvider, BatchResult

LIMIT = 400_000  # bytes
CHUNK = "x" * 1000  # ~2 KB per event with the estimated overhead


def _dead_url() -> str:
    """A loopback URL nothing listens on (the destination is down for the whole test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


class WriteOnly(BaseStorageProvider):
    """A write-only custom store: no change log, so exporters are fed from the bus (memory-only mode)."""

    name = "write-only"

    def __init__(self) -> None:
        self.stored = 0

    def store_batch(self, events: Sequence[TelemetryEvent]) -> BatchResult:
        """Accept everything."""
        self.stored += len(events)
        return BatchResult(stored=len(events))


def test_shares_split_the_limit_between_what_is_present() -> None:
    assert MemoryShares.split(LIMIT, sampler=False, bus_exporters=0) == MemoryShares(LIMIT, LIMIT, 0, 0)
    both = MemoryShares.split(LIMIT, sampler=True, bus_exporters=2)
    assert (both.sampler, both.exporters) == (int(LIMIT * SAMPLER_SHARE), int(LIMIT * EXPORTERS_SHARE))
    assert both.writer + both.sampler + both.exporters == LIMIT and both.writer >= LIMIT // 2
    every = MemoryShares.split(LIMIT, sampler=True, bus_exporters=2, seen=True)
    assert (every.sampler, every.exporters, every.seen) == (both.sampler, both.exporters, int(LIMIT * SEEN_SHARE))
    assert every.writer + every.sampler + every.exporters + every.seen == LIMIT and every.writer >= LIMIT * 0.48


def test_held_sessions_of_a_flood_stay_within_the_samplers_share(tmp_path: Path) -> None:
    # sample_rate 0 with keep_errors: every session is held until it ends; none ends, so without a bound
    # 2,000 sessions x 5 chunks (~20 MB) would be held.
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), sample_rate=0.0, keep_errors=True,
                          max_queue_size=100_000, block_timeout_ms=10_000, reliability={"memory_limit": LIMIT})
    try:
        health = telemetry.get_health_status()
        share = health["memory"]["shares"]["sampler"]
        assert share == int(LIMIT * SAMPLER_SHARE) and health["memory"]["shares"]["exporters"] == 0
        for i in range(2000):
            for _ in range(5):
                telemetry.track_stream(f"s{i}", CHUNK)
        assert telemetry.flush(60)  # sampled-out events are the sample rate's choice, not losses
        # The newest session fails: its held events are still there, released and stored with the error.
        telemetry.track({"event_type": "error", "session_id": "s1999", "category": "claude", "label": "boom"})
        assert telemetry.flush(30)
        health = telemetry.get_health_status()
        sampling = health["sampling"]
        assert 0 < sampling["held_bytes"] <= share and sampling["max_held_bytes"] == share
        assert health["memory"]["sampler_bytes"] == sampling["held_bytes"]
        reasons = sampling["held_dropped_reasons"]
        assert reasons["memory_limit"] > 9000 and reasons["max_held_sessions"] == 0
        assert sampling["held_dropped"] == sum(reasons.values())
        assert sampling["held_events"] + reasons["memory_limit"] + 5 == 2000 * 5  # every held event accounted for
        assert health["dropped_total"] == 0
        assert [e.event_type for e in telemetry.query(session_id="s1999", limit=10)].count("stream") == 5
        assert telemetry.query(session_id="s0", limit=10) == []  # evicted first, and never failed
    finally:
        telemetry.shutdown()


def test_the_sampler_bound_holds_real_memory_too() -> None:
    """tracemalloc, not the estimate: a bounded sampler's memory stops growing; an unbounded one's does not."""
    def held_after_flood(max_held_bytes: int | None) -> int:
        sample = Sample(0.0, keep_errors=True, max_held_bytes=max_held_bytes)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(20_000):  # 500 sessions of 40 chunks, each chunk its own string (as in life)
                sample.process(TelemetryEvent("stream", "claude", session_id=f"s{i // 40}",
                                              stream_data=f"{i:06d}{CHUNK}", metadata={"turn": i}))
            return tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()

    bound = 500_000
    bounded, unbounded = held_after_flood(bound), held_after_flood(None)
    assert bounded <= bound, bounded  # the estimate (limits.event_size) errs on the safe side
    assert unbounded > 10 * bound, unbounded  # the flood is big enough for the bound to matter


def test_a_bus_fed_exporter_queue_stays_within_its_share(tmp_path: Path) -> None:
    store = WriteOnly()
    telemetry = Telemetry(storage=[store, {"type": "webhook", "options": {"url": _dead_url(), "name": "down",
                                                                          "retry_base_s": 0.05}}],
                          max_queue_size=100_000, block_timeout_ms=10_000, reliability={"memory_limit": LIMIT})
    try:
        [status] = telemetry.get_health_status()["exporters"]
        share = int(LIMIT * EXPORTERS_SHARE)
        assert status["mode"] == "bus" and status["max_bytes"] == share
        for i in range(2000):
            assert telemetry.track({"event_type": "custom", "category": "load", "label": f"{i} {CHUNK}"})
        assert telemetry.flush(60)  # the primary store took every event
        assert store.stored == 2000
        health = telemetry.get_health_status()
        [status] = health["exporters"]
        assert 0 < status["queued_bytes"] <= share and health["memory"]["exporter_bytes"] == status["queued_bytes"]
        reasons = status["dropped_reasons"]
        assert reasons["memory_limit"] > 1500 and reasons["queue_full"] == 0
        assert status["lag"] + status["dropped"] == 2000 and status["delivered"] == 0  # each event accounted for
        assert health["memory"]["shares"]["writer"] == LIMIT - share
    finally:
        telemetry.shutdown(timeout=1)


def test_busfeed_bound_in_bytes_and_its_bad_value() -> None:
    dead = WebhookExporter(_dead_url(), name="bytes")
    feed = BusFeed(dead, capacity=1000, backoff=Backoff(0.01, 0.05), max_bytes=10_000)
    events = [TelemetryEvent("custom", "c", label=CHUNK) for _ in range(10)]
    taken = feed.offer(events)
    assert 0 < taken < 10 and feed.dropped_reasons == {"queue_full": 0, "memory_limit": 10 - taken,
                                                       "after_shutdown": 0}
    assert feed.queued_bytes() <= 10_000
    feed.shutdown(timeout=0)
    assert feed.offer(events[:2]) == 0 and feed.dropped_reasons["after_shutdown"] == 2
    with pytest.raises(ValidationError, match="max_bytes"):
        BusFeed(dead, max_bytes=0)
    with pytest.raises(ValidationError, match="max_held_bytes"):
        Sample(0.5, max_held_bytes=-1)
    with pytest.raises(ValidationError, match="max_seen_bytes"):
        Sample(0.5, max_seen_bytes=0)


def test_sessions_seen_stay_within_their_share(tmp_path: Path) -> None:
    # Sampling without keep_errors holds no events, but remembers the sessions it has seen (to count
    # each once): that set takes its share of memory_limit too, the session seen least recently forgotten.
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), sample_rate=0.5, keep_errors=False,
                          max_queue_size=100_000, block_timeout_ms=10_000, reliability={"memory_limit": LIMIT})
    try:
        share = telemetry.get_health_status()["memory"]["shares"]["seen"]
        assert share == int(LIMIT * SEEN_SHARE)
        sids = []
        for i in range(2000):
            sid = f"session-{i}"
            for step in ("plan", "act"):
                telemetry.track({"event_type": "custom", "session_id": sid, "category": "claude", "label": step})
            sids.append(sid)
        assert telemetry.flush(60)
        health = telemetry.get_health_status()
        sampling = health["sampling"]
        assert sampling["max_seen_bytes"] == share and 0 < sampling["seen_bytes"] <= share
        assert health["memory"]["seen_bytes"] == sampling["seen_bytes"]
        assert sampling["seen_forgotten"] == 2000 - sampling["seen_sessions"] > 1900
        # Each session's events came together, so each was counted once despite the bound. (Ends and
        # stream chunks, which the SDK sends behind later sessions' starts, could find theirs forgotten.)
        assert sampling["sessions_seen"] == 2000
        # The first session was forgotten: another event of it is counted again, and decided by its hash
        # as before (stored only if the session was).
        first = sids[0]
        telemetry.track({"event_type": "custom", "session_id": first, "category": "claude", "label": "late"})
        assert telemetry.flush(30)
        sampling = telemetry.get_health_status()["sampling"]
        assert sampling["sessions_seen"] == 2001
        kept = session_score(first) < 0.5
        assert len(telemetry.query(session_id=first, limit=10)) == (3 if kept else 0)
    finally:
        telemetry.shutdown()


def test_the_seen_bound_holds_real_memory_too() -> None:
    """tracemalloc, not the estimate: a bounded seen set stops growing; the default one grows past it."""
    def seen_after_flood(max_seen_bytes: int | None) -> int:
        sample = Sample(0.5, keep_errors=False, **({} if max_seen_bytes is None else
                                                   {"max_seen_bytes": max_seen_bytes}))
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(50_000):  # 50,000 sessions, an id each (a uuid's length), made as in life
                sample.process(TelemetryEvent("start", "claude", session_id=f"{i:08d}-7e3b-7000-8000-000000000042"))
            return tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()

    bound = 200_000
    bounded, default = seen_after_flood(bound), seen_after_flood(None)
    assert bounded <= bound, bounded  # the estimate (SEEN_ENTRY_BYTES + the id) errs on the safe side
    assert default > 10 * bound, default  # the flood is big enough for the bound to matter
