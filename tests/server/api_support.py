"""Helpers for the API server tests: event builders, a background SSE reader, a server in its own process."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vibekit_telemetry.server import ServerHandle

Serve = Callable[..., ServerHandle]
_URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


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


class ServerProcess:
    """`telemetry api` in its own process on a free loopback port; its output is collected on a thread.

    Args:
        db: the SQLite file to serve.
        args: extra `telemetry api` arguments.
        env: extra environment variables.
        nofile: a lower RLIMIT_NOFILE (soft) for the server process, as `ulimit -n` would set.
    """

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None, nofile: int | None = None,
                 log_level: str = "info") -> None:
        environment = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}

        def limit_files() -> None:  # runs in the child before exec
            if nofile is not None:
                _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), "api", "--port", "0",
             "--log-level", log_level, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
            preexec_fn=limit_files)
        self.lines: list[str] = []
        self._found = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._found.wait(30):
            self.stop()
            raise RuntimeError(f"`telemetry api` did not start:\n{self.output()}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"`telemetry api` never answered /health:\n{self.output()}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            match = _URL.search(line)
            if match and not self.url:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                self._found.set()
        self._found.set()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        """Everything the process printed so far (startup line, access log, warnings)."""
        return "".join(self.lines)

    def stop(self) -> str:
        """Stop the server (SIGTERM, then SIGKILL after 30 s) and return all it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        time.sleep(0.1)  # the reader thread takes the last lines
        return self.output()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
