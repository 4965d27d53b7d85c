"""Rate limits per client IP or API key, read and ingest budgets apart; state in memory or in Redis."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Authenticator
from .errors import error_body, json_response
from .settings import INGEST_PATHS, RateLimitSettings, ServerSettings

logger = logging.getLogger("vibekit_telemetry.server")

Budget = Literal["read", "ingest"]
EXEMPT_PREFIXES: Final = ("/health", "/metrics")
_PRUNE_EVERY: Final = 10_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request: allowed or not, and what to tell the client."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float = 0.0


def decide(allowed: bool, limit: int, window_s: float, elapsed_s: float, cur: int, prev: int,
           sliding: bool) -> Decision:
    """Turn window counts into a Decision (shared by the memory and Redis backends)."""
    weight = prev * (1 - elapsed_s / window_s) if sliding else 0.0
    used = weight + cur
    reset = max(0.0, window_s - elapsed_s)
    if allowed:
        return Decision(True, limit, max(0, math.floor(limit - used)), reset)
    if not sliding or cur + 1 > limit:
        # Wait for the next window; sliding: until the previous window's weight has faded enough too.
        wait = reset
        if sliding and cur > 0:
            wait += max(0.0, window_s * (1 - (limit - 1) / cur))
    else:
        wait = max(0.0, window_s * (1 - (limit - cur - 1) / prev) - elapsed_s) if prev else 0.0
    return Decision(False, limit, 0, reset, max(1.0, math.ceil(wait)))


class RateLimitBackend(Protocol):
    """Where counts live: hit() counts one request when it is within the limit."""

    async def hit(self, key: str, limit: int, window_s: float) -> Decision:
        """Count one request against `key` if allowed; return the verdict."""

    async def close(self) -> None:
        """Release connections."""


class MemoryBackend:
    """Counts in this process (one event loop, so no lock): fixed windows or a sliding window counter."""

    def __init__(self, strategy: str = "sliding") -> None:
        self.sliding = strategy == "sliding"
        # key -> [window index, count in that window, count in the window before]
        self._state: dict[str, list[int]] = {}
        self._hits = 0

    async def hit(self, key: str, limit: int, window_s: float) -> Decision:
        """Count one request against `key` if allowed; return the verdict."""
        now = time.time()
        index = int(now // window_s)
        elapsed = now - index * window_s
        entry = self._state.get(key)
        if entry is None or entry[0] < index - 1:
            entry = self._state[key] = [index, 0, 0]
        elif entry[0] == index - 1:
            entry[0], entry[1], entry[2] = index, 0, entry[1]
        cur, prev = entry[1], entry[2] if self.sliding else 0
        used = (prev * (1 - elapsed / window_s) if self.sliding else 0.0) + cur
        allowed = used + 1 <= limit
        if allowed:
            entry[1] += 1
            cur += 1
        self._hits += 1
        if self._hits % _PRUNE_EVERY == 0:
            self._prune(index)
        return decide(allowed, limit, window_s, elapsed, cur, prev, self.sliding)

    def _prune(self, index: int) -> None:
        for key in [k for k, v in self._state.items() if v[0] < index - 1]:
            del self._state[key]

    async def close(self) -> None:
        """Nothing to release."""


# Atomic in Redis, on Redis's clock, so replicas with skewed clocks still share one window.
_LUA: Final = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local sliding = tonumber(ARGV[3])
local idx = math.floor(now_ms / window_ms)
local elapsed = now_ms - idx * window_ms
local cur_key = KEYS[1] .. ':' .. idx
local cur = tonumber(redis.call('GET', cur_key) or '0')
local prev = 0
if sliding == 1 then prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or '0') end
local used = prev * (1 - elapsed / window_ms) + cur
if used + 1 > limit then return {0, cur, prev, elapsed} end
redis.call('INCR', cur_key)
redis.call('PEXPIRE', cur_key, window_ms * 2 + 1000)
return {1, cur + 1, prev, elapsed}
"""


class RedisBackend:
    """Counts in Redis so several server replicas share one budget; fails open if Redis is down."""

    def __init__(self, url: str, strategy: str = "sliding", prefix: str = "vibekit:rl") -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.sliding = strategy == "sliding"
        self.prefix = prefix
        self._redis: Any = aioredis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._script: Any = self._redis.register_script(_LUA)
        self._last_warning = 0.0
        self.failures = 0

    async def hit(self, key: str, limit: int, window_s: float) -> Decision:
        """Count one request against `key` in Redis if allowed; allow it when Redis cannot be reached."""
        window_ms = max(1, int(window_s * 1000))
        try:
            ok, cur, prev, elapsed_ms = await self._script(
                keys=[f"{self.prefix}:{key}:{window_ms}"], args=[window_ms, limit, int(self.sliding)])
        except Exception as exc:
            self.failures += 1
            if time.monotonic() - self._last_warning > 30:
                self._last_warning = time.monotonic()
                logger.warning("rate limit store %s unreachable, allowing requests: %s", self.url, exc)
            return Decision(True, limit, limit, window_s)
        return decide(bool(ok), limit, window_s, int(elapsed_ms) / 1000, int(cur), int(prev), self.sliding)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def make_backend(settings: RateLimitSettings) -> RateLimitBackend:
    """Return the Redis backend when a redis:// URL is configured, else the in-memory one."""
    if settings.redis_url:
        return RedisBackend(settings.redis_url, settings.strategy)
    return MemoryBackend(settings.strategy)


def budget_for(method: str, path: str) -> Budget | None:
    """Return which budget a request spends (None: exempt, e.g. health probes and scrapes)."""
    if path.startswith(EXEMPT_PREFIXES):
        return None
    if method == "POST" and path.rstrip("/") in INGEST_PATHS:
        return "ingest"
    return "read"


def client_ip(scope: Scope) -> str:
    """Return the client's IP as the scope has it: the socket peer, or what a trusted proxy forwarded.

    X-Forwarded-For is never read here: the proxy middleware rewrites `client` only for requests that
    came from a trusted proxy (`--trust-proxy`), so a forged header buys no fresh budget.
    """
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answer 429 with Retry-After past the budget; add X-RateLimit-* headers to allowed responses."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, backend: RateLimitBackend,
                 auth: Authenticator, on_limited: Any = None) -> None:
        self.app = app
        self.settings = settings.rate_limit
        self.backend = backend
        self.auth = auth
        self.on_limited = on_limited

    def _identity(self, scope: Scope) -> str:
        # A valid key is limited per key (a fleet behind one NAT shares an IP); anything else per IP,
        # so inventing keys does not buy a fresh budget.
        if self.auth.enabled:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k in (b"x-api-key", b"authorization")}
            if headers:
                principal, _ = self.auth.from_headers(headers)
                if principal is not None:
                    return f"key:{principal.key_id}"
        return f"ip:{client_ip(scope)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Spend one request of the matching budget, or refuse it."""
        if scope["type"] not in ("http", "websocket") or not self.settings.enabled:
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        budget = budget_for(method, scope.get("path", ""))
        if budget is None or method == "OPTIONS":
            await self.app(scope, receive, send)
            return
        limit = self.settings.ingest_limit if budget == "ingest" else self.settings.read_limit
        decision = await self.backend.hit(f"{budget}:{self._identity(scope)}", limit, self.settings.window_s)
        headers = {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining),
                   "X-RateLimit-Reset": str(math.ceil(decision.reset_s))}
        if not decision.allowed:
            if self.on_limited is not None:
                self.on_limited(budget)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "rate limit exceeded"})
                return
            retry = str(int(decision.retry_after_s))
            body = error_body("Too Many Requests", f"{budget} rate limit of {limit} requests per "
                              f"{self.settings.window_s:g} s exceeded; retry after {retry} s")
            await json_response(body, 429, {**headers, "Retry-After": retry})(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)
