"""memory_limit enforced: the writer queue holds at most that many bytes of events; past it events spill to
the spool (a remote primary) or are dropped by the backpressure policy, every drop counted as memory_limit."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry

LIMIT = 200_000  # bytes: ~200 small events at the estimated 1 KB each


def _until(predicate: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    return predicate()


def _event(i: int) -> dict[str, Any]:
    return {"event_type": "custom", "category": "load", "action": "tick", "label": f"event {i}"}


@pytest.mark.parametrize("memory_limit", [LIMIT, None])
def test_a_stalled_store_fills_the_queue_only_up_to_memory_limit(db_path: Path, memory_limit: int | None) -> None:
    telemetry = Telemetry(db_path=str(db_path), stream_flush_interval_ms=20, backpressure="drop_newest",
                          reliability={"memory_limit": memory_limit, "check_interval_s": 0.1})
    high: list[dict[str, Any]] = []
    telemetry.on("memory:high", high.append)
    try:
        assert telemetry.track(_event(-1)) and telemetry.flush(10)
        # Another process holds the database's write lock: the writer waits it out, the queue grows.
        locker = sqlite3.connect(db_path, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            accepted = sum(bool(telemetry.track(_event(i))) for i in range(2000))
            _until(lambda: telemetry.runtime.worker.depth() == 0 or accepted < 2000, 2)  # type: ignore[union-attr]
            health = telemetry.get_health_status()
        finally:
            locker.rollback()
            locker.close()
        assert telemetry.flush(30) is (memory_limit is None)  # False: events were lost since the last flush
        after = telemetry.get_health_status()
    finally:
        telemetry.shutdown()
    with sqlite3.connect(db_path) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE category = 'load'").fetchone()[0]
    assert stored == accepted + 1  # every accepted event is stored, once
    if memory_limit is None:
        assert accepted == 2000 and after["dropped_total"] == 0  # the 50,000-event queue takes them all
        return
    # The queue's bound follows memory_limit: ~200 events of the measured size, not 50,000.
    assert 50 < health["queue"]["capacity"] <= LIMIT // 500 and health["memory"]["queue_bound"] == health["queue"][
        "capacity"]
    dropped = after["dropped"]["memory_limit"]
    assert dropped > 1000 and accepted + dropped == 2000  # every refused event counted, under its reason
    assert after["dropped"]["queue_full"] == 0
    assert high and high[0]["limit"] == LIMIT
    assert any(issue.startswith("memory:") for issue in health["issues"])


def test_a_remote_primary_that_is_down_spills_to_the_spool_instead_of_dropping(tmp_path: Path) -> None:
    # A primary that refuses connections, retried for ever (no breaker): without memory_limit the writer
    # would wait out the retries while the queue grows; with it, batches go to the spool at half the limit.
    telemetry = Telemetry(
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
        stream_flush_interval_ms=20, block_timeout_ms=5000,
        reliability={"memory_limit": LIMIT, "spool_path": str(tmp_path / "spool.db"),
                     "circuit_breaker": {"enabled": False},
                     "retry": {"max_attempts": 1000, "base_ms": 500, "max_ms": 2000, "jitter": False}})
    try:
        started = time.monotonic()
        assert all(telemetry.track(_event(i)) for i in range(2000))  # none refused, none blocked for 5 s
        assert time.monotonic() - started < 5
        # Once the queue passed half the limit, batches went to the spool without waiting out the
        # retries (counted as spilled). Which later batches follow them because the queue is still over
        # the limit, and which because the spool must be replayed first (order), depends on timing;
        # without the spill the writer would sit in its retries and track() above would block or drop.
        health = _until(lambda: (h := telemetry.get_health_status())["spool"]["depth"] >= 1000 and h)
        assert health and health["memory"]["spilled"] >= 1 and health["dropped_total"] == 0
    finally:
        telemetry.shutdown(timeout=3)  # the batch still being retried goes to the spool too
    with sqlite3.connect(tmp_path / "spool.db") as conn:
        assert conn.execute("SELECT count(DISTINCT event_id) FROM spool").fetchone()[0] == 2000


def test_a_bad_memory_limit_names_the_field(db_path: Path) -> None:
    from vibekit_telemetry.errors import ValidationError

    with pytest.raises((ValidationError, ValueError), match="memory_limit"):
        Telemetry(db_path=str(db_path), reliability={"memory_limit": 0}, raise_on_error=True)
