"""The ASGI app: one factory from a Telemetry, so the CLI, tests and embedding apps serve the same thing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .. import __version__
from .auth import Authenticator
from .body import BodyLimitMiddleware
from .browser_guard import BrowserGuardMiddleware, declared_body_types
from .errors import JSONBody, install_error_handlers
from .metrics import HttpMetricsMiddleware, ServerMetrics
from .ratelimit import RateLimitMiddleware, make_backend
from .replica_feed import replica_feed_for
from .routers import analytics, events, exports, health, metrics, otlp, pipeline, sessions, stats, streams
from .security_headers import SecurityHeadersMiddleware
from .settings import ServerSettings
from .streams import StreamHub

if TYPE_CHECKING:
    from ..service import Telemetry

logger = logging.getLogger("vibekit_telemetry.server")

DESCRIPTION = """\
Local-first telemetry for AI-agent apps: send events (one or a batch), query events, sessions and
stats, and watch events live over WebSocket (`/ws`) or Server-Sent Events (`/api/stream`).

Authenticate with `X-API-Key: <key>` or `Authorization: Bearer <token>` when the server runs with auth.
Every error answers `{"error", "message", "details": [{"field", "message"}]}`.
"""


def create_app(telemetry: Telemetry, settings: ServerSettings | None = None, **options: Any) -> FastAPI:
    """Build the API app serving `telemetry`; settings default to the `api` config and TELEMETRY_* env.

    Args:
        telemetry: the Telemetry instance whose store is served and whose pipeline ingests.
        settings: server settings; built with ServerSettings.resolve(telemetry.config.api, **options)
            when omitted.
        **options: ServerSettings overrides (auth, api_keys, cors_origins, rate_limit, max_body_bytes …),
            and dashboard=True to serve the web dashboard at /dashboard/ (and redirect / there).
    """
    from ..processing.redact import enable_for_server  # PII redaction is on by default for ingest

    if telemetry.runtime is not None:
        enable_for_server(telemetry.runtime.chain, telemetry.config.security)
    with_dashboard = bool(options.pop("dashboard", False))  # the web dashboard (issue 9)
    if settings is None:
        settings = ServerSettings.resolve(telemetry.config.api, **options)
    elif options:
        settings = settings.with_options(**options)
    hub = StreamHub(buffer_size=settings.stream_buffer, max_clients=settings.max_stream_clients,
                    heartbeat_s=settings.heartbeat_s)
    server_metrics = ServerMetrics()
    auth = Authenticator(settings)
    limiter = make_backend(settings.rate_limit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The lifespan owns what runs beside requests: the live-stream hub and the metrics listeners
        # (both fed by the writer thread), and the rate-limit store connection.
        # Replicas on one PostgreSQL: the hub follows the change log (every replica's events) instead.
        feed = replica_feed_for(telemetry, hub)
        hub.attach(telemetry, asyncio.get_running_loop(), local=feed is None)
        if feed is not None:
            telemetry.on("events:tracked", feed.on_local_commit)
            feed.start()
        app.state.replica_feed = feed
        server_metrics.attach(telemetry, hub)
        try:
            yield
        finally:
            if feed is not None:
                telemetry.off("events:tracked", feed.on_local_commit)
                feed.stop()
            hub.detach()
            server_metrics.detach()
            await limiter.close()
            # Whatever was accepted is written before the server reports it has stopped.
            await asyncio.get_running_loop().run_in_executor(None, telemetry.flush, 10.0)

    app = FastAPI(title="vibekit-telemetry API", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, default_response_class=JSONBody,
                  docs_url="/docs" if settings.public_docs else None,
                  redoc_url="/redoc" if settings.public_docs else None,
                  openapi_url="/openapi.json" if settings.public_docs else None)
    app.state.telemetry = telemetry
    app.state.settings = settings
    app.state.hub = hub
    app.state.metrics = server_metrics
    app.state.auth = auth
    app.state.limiter = limiter
    app.state.started = time.monotonic()
    app.state.insights = telemetry.get_insights  # /api/insights (analytics, issue 10)
    install_error_handlers(app)
    for module in (events, sessions, stats, health, metrics, streams, analytics):
        app.include_router(module.router)
    app.include_router(otlp.router)  # POST /v1/traces (issue 8)
    app.include_router(exports.router)  # POST /api/exports (issue 11)
    app.include_router(pipeline.router)  # seed 004's usage ingestion (issue 14)
    if with_dashboard:
        from .routers import dashboard  # issue 9: the page, its assets and its downloads

        app.include_router(dashboard.router)

    # Added innermost first: the last one added sees the request first. Security headers and request
    # timing wrap everything (429s and 413s included); CORS answers preflights before rate limits and
    # auth, and adds its headers to refusals so browsers can read them.
    app.add_middleware(RateLimitMiddleware, settings=settings, backend=limiter, auth=auth,
                       on_limited=lambda budget: server_metrics.rate_limited.labels(budget).inc())
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    # Inside CORS, so a 415 to an allowed origin still carries the CORS headers the page needs to read it.
    app.add_middleware(BrowserGuardMiddleware, allowed_origins=settings.allowed_origins,
                       route_types=declared_body_types(app.routes))
    if settings.allowed_origins:
        wildcard = "*" in settings.allowed_origins
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.allowed_origins),
            # Browsers refuse credentials with a wildcard origin; keep `*` usable without them.
            allow_credentials=settings.cors_credentials and not wildcard,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
            max_age=600)
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(HttpMetricsMiddleware, metrics=server_metrics)
    if settings.trusted_proxies:
        # Outermost: the client address and scheme are rewritten only for requests whose socket peer is
        # a trusted proxy, before rate limits, logs and HSTS look at them. Without it, X-Forwarded-* are
        # ignored (the ASGI server's own proxy handling is switched off in runner.py).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app
