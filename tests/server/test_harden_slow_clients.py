"""Issue 7, attack 6: slow clients (slow-loris headers and bodies, a flood of idle connections)."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import httpx
import pytest
from api_support import Serve

from servers import ServerProcess


def _open(handle_url: str) -> socket.socket:
    host, port = handle_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_server(sock: socket.socket) -> bool:
    """Return whether the server closed the connection (EOF or reset) instead of waiting."""
    sock.settimeout(0.05)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_headers_sent_one_byte_at_a_time_are_cut_off(serve: Serve) -> None:
    handle = serve(header_timeout_s=1.0)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
    with _open(handle.url) as sock:
        closed = False
        # 200+ bytes at one every 0.05 s would take 10 s: the server must hang up long before the end.
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                closed = True
                break
            if _closed_by_server(sock):
                closed = True
                break
    assert closed, "a client trickling its headers kept its connection"
    with httpx.Client(base_url=handle.url) as http:  # well-behaved clients are unaffected
        assert http.get("/health").status_code == 200


def test_a_connection_that_never_sends_anything_is_closed(serve: Serve) -> None:
    handle = serve(header_timeout_s=0.5)
    with _open(handle.url) as sock:
        sock.settimeout(15)
        assert sock.recv(100) == b""


def test_a_body_sent_too_slowly_gets_408(serve: Serve) -> None:
    handle = serve(body_timeout_s=1.0)
    head = (b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n")
    with _open(handle.url) as sock:
        sock.sendall(head + b'{"event_type": ')
        answer = b""
        sock.settimeout(0.1)
        for _ in range(150):  # up to 15 s, a byte every 0.1 s: slower than the 1 s body deadline allows
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                sock.sendall(b" ")
                continue
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"field":"body"' in answer
    assert httpx.get(handle.url + "/api/events").json()["count"] == 0


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2400,
                    reason="the test itself needs about 1,200 open files (ulimit -n)")
def test_health_answers_while_1100_slow_connections_are_open(tmp_path: Path) -> None:
    # The setup: `ulimit -n 1024` and 1,100 connections each stuck halfway through its headers.
    with ServerProcess(tmp_path / "t.db", nofile=1024, log_level="warning") as server:
        host, port = "127.0.0.1", server.port
        slow: list[socket.socket] = []
        try:
            for _ in range(1100):
                sock = socket.create_connection((host, port), timeout=10)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                slow.append(sock)
            time.sleep(0.5)  # let the server accept the last of them
            with httpx.Client(base_url=server.url, timeout=20) as http:
                for _ in range(3):
                    assert http.get("/health").status_code == 200
        finally:
            for sock in slow:
                sock.close()
        output = server.stop()
    assert "waiting for request headers" in output  # the idlest were shed to make room
