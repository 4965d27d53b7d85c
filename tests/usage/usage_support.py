"""Helpers for the usage tests: loopback endpoints that count, hang, or are the real API server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Counting:
    """A loopback HTTP endpoint that records every request it gets and answers 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self) -> None:
                outer.requests.append({"GET": self.path})
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/pipeline"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hanging_endpoint() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (until the test ends)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/pipeline"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def payload(**overrides: Any) -> dict[str, Any]:
    """A valid seed 004 `data` object."""
    data: dict[str, Any] = {"eventName": "command_executed", "userId": "3f1d2c4e-0000-4000-8000-000000000001",
                            "sessionId": "s-1", "timestamp": "2025-03-01T10:00:00.000Z", "toolVersion": "1.4.0",
                            "command": "plan", "duration": 1234.5, "promptTokens": 1200, "completionTokens": 300,
                            "provider": "gemini", "model": "gemini-2.5-pro", "options": {"debug": True},
                            "hasError": False}
    data.update(overrides)
    return data
