"""Helpers for the API server tests: event builders, a background SSE reader (a server process: tests/servers.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from vibekit_telemetry.server import ServerHandle

Serve = Callable[..., ServerHandle]


def start_event(session_id: str, category: str = "claude", **extra: Any) -> dict[str, Any]:
    """Return a start event in the seeds' camelCase spelling."""
    return {"eventType": "start", "sessionId": session_id, "agentType": category, "mode": "code",
            "prompt": "Fix the bug", **extra}


def stream_event(session_id: str, data: str = "chunk", **extra: Any) -> dict[str, Any]:
    """Return a stream event."""
    return {"event_type": "stream", "session_id": session_id, "stream_data": data, **extra}


class SSEReader:
    """Read an SSE stream on a thread, keeping each `data:` message with its arrival time."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status: int | None = None
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.connected.wait(10):
            raise TimeoutError(f"no SSE connection to {url}")

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as http, \
                http.stream("GET", self.url, headers=self.headers) as response:
            self.status = response.status_code
            kind = "message"
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if kind == "connected":
                        self.connected.set()
                    elif kind == "message":
                        self.messages.append((time.perf_counter(), data))
                    self.events.append((kind, data))
                elif not line:
                    kind = "message"
            self.connected.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[float, dict[str, Any]]]:
        """Wait until `count` event messages arrived (or the timeout passed); return them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.002)
        return list(self.messages)

    def close(self) -> None:
        """Stop reading (the server notices the closed connection)."""
        self._stop.set()
