"""Run the API on uvicorn: in a background thread (start_api_server) or in the foreground (the CLI)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from ..errors import TelemetryError
from . import log_redaction
from .app import create_app
from .connections import ConnectionGuard, guarded_protocol
from .settings import ServerSettings
from .streams import StreamHub

if TYPE_CHECKING:
    from ..service import Telemetry
    from .tls import TlsPair

logger = logging.getLogger("vibekit_telemetry.server")


class _Server(uvicorn.Server):
    """uvicorn.Server that also ends live streams when asked to exit (SSE would otherwise hold shutdown)."""

    def __init__(self, config: uvicorn.Config, hub: StreamHub) -> None:
        super().__init__(config)
        self.hub = hub

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """On SIGINT/SIGTERM: close live streams, then shut down gracefully as uvicorn does."""
        self.hub.close_all_threadsafe()
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal once it has shut down, which would kill the process
        # before the CLI closes the store; a graceful stop here is the expected end, so exit normally.
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list):
            captured.clear()


# WebSocket commands are a few hundred bytes; nothing a client says needs more.
WS_MAX_BYTES = 1024 * 1024


def _config(app: FastAPI, log_level: str, access_log: bool, tls: TlsPair | None = None) -> uvicorn.Config:
    settings: ServerSettings = app.state.settings
    guard = ConnectionGuard(settings.header_timeout_s, settings.max_connections)
    # Long-lived streams are closed by the hub first; the grace period bounds anything else.
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 by default;
    # the app applies forwarded headers itself, and only from the proxies it is told to trust.
    # ws_per_message_deflate=False: compressing every frame once per subscriber was most of the CPU of
    # live fan-out (50 dashboards compressing the same batch 50 times); see bench/bench_fanout.py.
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            ws_per_message_deflate=False,
                            timeout_graceful_shutdown=5, server_header=False, ws_ping_interval=20.0,
                            proxy_headers=False, forwarded_allow_ips=[], http=guarded_protocol(guard),
                            timeout_keep_alive=5, limit_concurrency=guard.cap, ws_max_size=WS_MAX_BYTES,
                            h11_max_incomplete_event_size=64 * 1024,
                            ssl_certfile=tls.cert_path if tls is not None else None,
                            ssl_keyfile=tls.key_path if tls is not None else None)
    # uvicorn configured its loggers just now: secrets in query strings are redacted from here on.
    log_redaction.install()
    return config


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TelemetryError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int, tls: TlsPair | None = None) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    scheme = "https" if tls is not None else "http"
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"


class ServerHandle:
    """A running API server: its `url`, its `app`, and `stop()` (also a context manager)."""

    def __init__(self, server: _Server, thread: threading.Thread, sock: socket.socket, host: str,
                 port: int, app: FastAPI, tls: TlsPair | None = None) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.host = host
        self.port = port
        self.app = app
        self.url = _url(host, port, tls)

    @property
    def running(self) -> bool:
        """Whether the server thread still runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Close live streams, stop accepting, finish requests, flush events; safe to call twice."""
        self._server.hub.close_all_threadsafe()
        self._server.should_exit = True
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if stopped:
            self._sock.close()
        return stopped

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerHandle {self.url} {'running' if self.running else 'stopped'}>"


def start_api_server(telemetry: Telemetry, port: int = 3000, host: str = "127.0.0.1", *,
                     settings: ServerSettings | None = None, log_level: str = "warning",
                     access_log: bool = False, ready_timeout: float = 15.0, tls: TlsPair | None = None,
                     **options: Any) -> ServerHandle:
    """Serve the API in a background thread; return a handle with `url` and `stop()` (port=0: any free port).

    `options` are ServerSettings overrides: auth, api_keys, bearer_tokens, cors_origins, rate_limit,
    redis_url, max_body_bytes, public_metrics … tls (server.tls.load_tls_pair): serve HTTPS only.
    """
    app = create_app(telemetry, settings, **options)
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    server = _Server(_config(app, log_level, access_log, tls), app.state.hub)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"vibekit-telemetry-api:{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            reason = f": {errors[0]}" if errors else ""
            raise TelemetryError(f"the API server did not start on {host}:{bound_port}{reason}")
        time.sleep(0.005)
    return ServerHandle(server, thread, sock, host, bound_port, app, tls)


def run_api_server(telemetry: Telemetry, port: int = 3000, host: str = "127.0.0.1", *,
                   settings: ServerSettings | None = None, log_level: str = "info", access_log: bool = True,
                   on_ready: Any = None, tls: TlsPair | None = None, **options: Any) -> None:
    """Serve the API in the foreground until SIGINT/SIGTERM; pending events are flushed before returning.

    tls (server.tls.load_tls_pair): serve HTTPS only; on_ready gets the https:// URL.
    """
    app = create_app(telemetry, settings, **options)
    sock = _bind(host, port)
    server = _Server(_config(app, log_level, access_log, tls), app.state.hub)
    if on_ready is not None:
        on_ready(_url(host, int(sock.getsockname()[1]), tls))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        telemetry.flush(timeout=30.0)
    if not server.started:
        raise TelemetryError(f"the API server did not start on {host}:{port}")
