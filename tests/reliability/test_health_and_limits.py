"""Health names every component and issue; the rate limit step, adaptive batching, memory:high, linear backoff."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vibekit_telemetry import Telemetry
from vibekit_telemetry.exporters.backoff import Backoff
from vibekit_telemetry.worker import BatchWorker


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on exit: connections are refused


def _until(predicate: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_health_lists_an_exporter_whose_breaker_opened(tmp_path: Path) -> None:
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": f"http://127.0.0.1:{_dead_port()}/hook", "retry_base_s": 0.01,
                                        "retry_max_s": 0.05, "failure_threshold": 2, "open_timeout_s": 60,
                                        "start_at": "beginning"}},
    ], stream_flush_interval_ms=20)
    try:
        telemetry.track_start("claude", "code", "to a dead webhook")
        assert telemetry.flush(10)
        health = _until(lambda: (h := telemetry.get_health_status())["exporters"][0]["breaker"] == "open" and h)
        assert health and not health["healthy"]
        assert any(i.startswith("exporter ") and "circuit breaker open" in i for i in health["issues"])
        for key in ("queue", "writer", "stores", "spool", "primary", "memory", "disk", "last_commit", "dropped"):
            assert key in health
        assert health["memory"]["rss_bytes"] > 0 and health["last_commit"]["at"] is not None
        with telemetry.start_api_server(port=0) as server:
            ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        assert ready.status_code == 200  # the primary store takes events: ready, though not healthy
        body = ready.json()
        assert body["healthy"] is False and body["issues"] == health["issues"]
        assert body["components"]["exporters"][0]["breaker"] == "open"
        assert body["components"]["queue"]["capacity"] == 50_000
    finally:
        telemetry.shutdown()


def test_a_healthy_telemetry_says_so(make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(reliability={"min_free_disk_mb": 0})
    telemetry.track_start("claude", "code", "fine")
    assert telemetry.flush(10)
    health = telemetry.get_health_status()
    assert health["healthy"] and health["issues"] == [] and health["status"] == "healthy"
    assert health["spool"] is None and health["primary"]["breaker"] is None  # a local primary needs neither


def test_rate_limit_per_category(make_telemetry: Callable[..., Telemetry], db_path: Path) -> None:
    telemetry = make_telemetry(reliability={"rate_limit": {"enabled": True, "max_requests": 10,
                                                           "window_ms": 600_000}})
    assert "rate_limit" in telemetry.runtime.chain.names  # type: ignore[union-attr]
    for i in range(50):
        assert telemetry.track({"event_type": "custom", "category": "runaway", "action": "loop", "label": str(i)})
    for i in range(5):
        telemetry.track({"event_type": "custom", "category": "calm", "action": "once", "label": str(i)})
    assert telemetry.flush(10)  # a limit's drops are a choice, counted by name, not a loss
    with sqlite3.connect(db_path) as conn:
        counts = dict(conn.execute("SELECT category, count(*) FROM events GROUP BY category").fetchall())
    assert counts == {"runaway": 10, "calm": 5}
    assert telemetry.get_health_status()["chain"]["dropped"]["rate_limit"] == 40


def test_memory_high_is_emitted_over_the_limit(make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(reliability={"memory_limit": 1024 * 1024, "check_interval_s": 0.1})
    seen: list[dict[str, Any]] = []
    telemetry.on("memory:high", seen.append)
    assert _until(lambda: seen, 10)
    assert seen[0]["limit"] == 1024 * 1024 and seen[0]["used"] > seen[0]["limit"] and seen[0]["percentage"] > 100
    health = telemetry.get_health_status()
    assert health["memory"]["high"] and any(i.startswith("memory:") for i in health["issues"])


def test_adaptive_batching_follows_commit_latency() -> None:
    sizes: list[int] = []
    slow = threading.Event()
    slow.set()

    def commit(batch: list[Any]) -> None:
        sizes.append(len(batch))
        if slow.is_set():
            time.sleep(0.001 * len(batch))  # a store whose commit time grows with the batch

    worker = BatchWorker(commit, batch_size=10, interval_s=0.01, max_batch=1000, max_queue=100_000,
                         target_batch_ms=50)
    try:
        for i in range(5000):
            worker.submit(i)
        assert worker.flush(60)
        assert sizes[0] == 1000 and worker.batch_limit() < 100  # slow commits: smaller batches
        slow.clear()
        for _ in range(40):
            for i in range(2000):
                worker.submit(i)
            assert worker.flush(60)
        assert worker.batch_limit() == 1000  # fast commits: back to the largest batch
    finally:
        worker.shutdown(10)


def test_backoff_linear_and_exponential() -> None:
    linear = Backoff(0.1, 1.0, rng=lambda: 1.0, linear=True)
    assert [round(linear.delay(n), 3) for n in (1, 2, 3, 20)] == [0.1, 0.2, 0.3, 1.0]
    exponential = Backoff(0.1, 1.0, rng=lambda: 1.0)
    assert [round(exponential.delay(n), 3) for n in (1, 2, 3, 20)] == [0.1, 0.2, 0.4, 1.0]


def test_cli_health_shows_a_spool_backlog(tmp_path: Path, make_telemetry: Callable[..., Telemetry]) -> None:
    import json

    from click.testing import CliRunner

    from vibekit_telemetry.cli import cli
    from vibekit_telemetry.events import TelemetryEvent
    from vibekit_telemetry.spool import Spool

    make_telemetry(db_path=str(tmp_path / "t.db")).flush()
    spool = Spool(tmp_path / ".vibekit" / "spool-abc.db", 100)  # what a writer left while its primary was away
    spool.append([TelemetryEvent(event_type="custom", category="c", event_id=f"id{i}", timestamp=1) for i in range(3)])
    spool.close()
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "t.db"), "health", "--format", "json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["status"] == "degraded" and report["healthy"] is False
    assert report["spools"] == [{"path": ".vibekit/spool-abc.db", "depth": 3}]
    assert any("3 events wait" in issue for issue in report["issues"])
