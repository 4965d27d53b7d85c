"""Helpers for the exporter tests: events, free ports and a real webhook receiver on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vibekit_telemetry.events import TelemetryEvent, now_ms


def event(kind: str = "custom", *, sid: str | None = None, text: str = "x", at: int | None = None) -> TelemetryEvent:
    """A stored-ready event with its own id."""
    return TelemetryEvent(kind, "claude", session_id=sid, action="code", label=text,
                          timestamp=now_ms() if at is None else at, event_id=uuid.uuid4().hex,
                          metadata={"n": text})


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until check() holds (True) or the timeout passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return check()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A real webhook receiver (http.server on loopback) that records every event_id POSTed to it.

    stop() closes the port (clients get connection refused), start() listens on the same port again.
    `status` is what it answers (200 by default).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.ids: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        """Listen (again) on the port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = owner.status
                if 200 <= status < 300:
                    with owner._lock:
                        owner.ids.extend(e["event_id"] for e in body["events"])
                        owner.bodies.append(body)
                        owner.headers.append(dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def running(self) -> bool:
        """Whether the port is open."""
        return self._server is not None

    def count(self) -> int:
        """How many event ids were received, duplicates included."""
        with self._lock:
            return len(self.ids)

    def received(self) -> list[str]:
        """Every event_id received so far, duplicates included, in arrival order."""
        with self._lock:
            return list(self.ids)
