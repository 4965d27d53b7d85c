"""Rate-limit windows in memory and in Redis; Redis limits shared by two app instances on real servers."""

from __future__ import annotations

import asyncio
import secrets
import socket

import httpx
import pytest
from api_support import Serve, start_event

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server.ratelimit import MemoryBackend, RedisBackend, budget_for, decide

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


needs_redis = pytest.mark.skipif(not _redis_up(), reason="Redis is not running on 127.0.0.1:6379 "
                                 "(start redis-server to run the shared rate-limit tests)")


def test_budgets_by_route() -> None:
    assert budget_for("POST", "/api/events") == "ingest"
    assert budget_for("POST", "/v1/traces") == "ingest"
    assert budget_for("GET", "/api/events") == "read"
    assert budget_for("GET", "/ws") == "read"
    assert budget_for("GET", "/health/ready") is None
    assert budget_for("GET", "/metrics") is None


@pytest.mark.parametrize("strategy", ["fixed", "sliding"])
def test_memory_backend_counts_per_key(strategy: str) -> None:
    backend = MemoryBackend(strategy)

    async def run() -> list[bool]:
        return [(await backend.hit(key, 3, 60)).allowed for key in ["a"] * 4 + ["b"]]

    assert asyncio.run(run()) == [True, True, True, False, True]


def test_sliding_window_weighs_the_previous_window() -> None:
    # 10 requests in the previous window, 40% into the current one: 6 still count.
    refused = decide(False, 10, 60.0, 24.0, 4, 10, sliding=True)
    assert refused.retry_after_s >= 1
    allowed = decide(True, 10, 60.0, 24.0, 3, 10, sliding=True)
    assert allowed.remaining == 1
    fixed = decide(False, 10, 60.0, 24.0, 10, 0, sliding=False)
    assert fixed.retry_after_s == 36


@needs_redis
def test_redis_backend_is_atomic_under_concurrency() -> None:
    key = f"test:{secrets.token_hex(6)}"

    async def run() -> int:
        backend = RedisBackend(REDIS_URL, "fixed")
        try:
            results = await asyncio.gather(*(backend.hit(key, 25, 60) for _ in range(60)))
        finally:
            await backend.close()
        return sum(r.allowed for r in results)

    assert asyncio.run(run()) == 25


def test_redis_unreachable_fails_open() -> None:
    async def run() -> bool:
        backend = RedisBackend("redis://127.0.0.1:1/0", "sliding")
        try:
            return (await backend.hit("k", 1, 60)).allowed and (await backend.hit("k", 1, 60)).allowed
        finally:
            await backend.close()

    assert asyncio.run(run())


@needs_redis
def test_two_servers_share_a_redis_budget(serve: Serve) -> None:
    key = f"shared-{secrets.token_hex(8)}"  # a fresh key: a fresh Redis bucket for this run
    other = Telemetry(storage=[{"type": "memory"}], stream_flush_interval_ms=5)
    try:
        options = {"api_keys": [key], "redis_url": REDIS_URL, "read_limit": 4, "ingest_limit": 2,
                   "rate_window_s": 60}
        first, second = serve(**options), serve(other, **options)
        headers = {"X-API-Key": key}
        statuses = [httpx.get(f"{url}/api/stats", headers=headers).status_code
                    for url in (first.url, second.url) * 3]
        assert statuses == [200, 200, 200, 200, 429, 429]
        refused = httpx.get(f"{second.url}/api/events", headers=headers)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        ingest = [httpx.post(f"{url}/api/events", json=start_event("r"), headers=headers).status_code
                  for url in (first.url, second.url, first.url)]
        assert ingest == [200, 200, 429]
    finally:
        other.shutdown()
