"""`telemetry api --grpc-port` as a user runs it: a real process, a gRPC client subscribing and ingesting."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grpc_tools", reason="the grpc extra (grpcio-tools) is not installed")
pytest.importorskip("fastapi", reason="the server extra is not installed")

import grpc
import httpx

from vibekit_telemetry.streaming.grpc_service import GrpcStreamClient

KEY = "grpc-cli-secret-0123456789"
_ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


class Served:
    """A `telemetry api` process; its HTTP url and gRPC target, read from what it prints."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), "api", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or _ENV)
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                if "Serving" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30) and self.process.poll() is None, self.output
        self.url = _find(r"(http://127\.0\.0\.1:\d+)", self.output)
        self.target = _find(r"gRPC TelemetryStream at (127\.0\.0\.1:\d+)", self.output)

    @property
    def output(self) -> str:
        """What the process printed so far."""
        return "".join(self.lines)

    def stop(self) -> None:
        """Ctrl-C equivalent: SIGTERM, then wait."""
        self.process.terminate()
        self.process.wait(timeout=30)


def _find(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, text
    return found.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("grpc-cli") / "cli.db", "--grpc-port", "0",
                    "--api-key", f"{KEY}:read+ingest")
    yield server
    server.stop()


def _collect(call: Any, want: int, into: list[Any]) -> None:
    try:
        for message in call:
            into.append(message)
            if len(into) == want:
                call.cancel()
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            raise


def _subscribe_until(client: GrpcStreamClient, want: int, send: Any, **chosen: Any) -> list[Any]:
    """Subscribe, then keep sending until the subscription has `want` messages (it starts asynchronously)."""
    got: list[Any] = []
    reader = threading.Thread(target=_collect, args=(client.subscribe(**chosen), want, got))
    reader.start()
    for attempt in range(100):
        send(attempt)
        reader.join(0.1)
        if not reader.is_alive():
            break
    reader.join(10)
    return got


def test_grpc_port_flag_serves_live_events_and_durable_ingest(served: Served) -> None:
    client = GrpcStreamClient(served.target, api_key=KEY)
    headers = {"X-API-Key": KEY}

    def send_live(attempt: int) -> None:
        reply = client.ingest([[{"event_type": "stream", "session_id": "s-live", "category": "claude",
                                 "stream_data": f"chunk {attempt}"},
                                {"event_type": "stream", "session_id": "s-other", "category": "claude",
                                 "stream_data": "x"}]])
        assert reply.accepted == 2

    by_session = _subscribe_until(client, 2, send_live, session_ids=["s-live"])
    assert len(by_session) == 2 and {m.session_id for m in by_session} == {"s-live"}

    def send_http(attempt: int) -> None:  # events posted over HTTP reach gRPC subscribers too (one Telemetry)
        response = httpx.post(served.url + "/api/events?wait=true", headers=headers, timeout=10,
                              json={"event_type": "start", "session_id": f"h{attempt}", "agent_type": "gemini"})
        assert response.status_code in (200, 201, 202), response.text

    by_category = _subscribe_until(client, 1, send_http, categories=["gemini"])
    assert by_category[0].category == "gemini" and by_category[0].session_id.startswith("h")

    batches = [[{"event_type": "start", "session_id": f"b{i}", "category": "codex", "metadata": {"i": i}}
                for i in range(j * 5, j * 5 + 5)] for j in range(3)]
    reply = client.ingest(batches)
    assert (reply.accepted, reply.batches) == (15, 3)
    # Durable: committed before the reply, so the HTTP API of the same process reads all of them at once.
    stored = httpx.get(served.url + "/api/events", params={"category": "codex", "limit": 100}, headers=headers,
                       timeout=10).json()
    assert sorted(e["metadata"]["i"] for e in stored["events"]) == list(range(15)), stored
    client.close()


def test_grpc_uses_the_api_keys_of_the_http_api(served: Served) -> None:
    anonymous = GrpcStreamClient(served.target)
    wrong = GrpcStreamClient(served.target, api_key="not-the-key-0123456789")
    try:
        for client in (anonymous, wrong):
            with pytest.raises(grpc.RpcError) as raised:
                client.ingest([[{"event_type": "start", "session_id": "x", "category": "claude"}]])
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        anonymous.close()
        wrong.close()


def test_grpc_port_from_the_environment_and_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"), "api", "--port", "0"],
            capture_output=True, text=True, timeout=60, env={**_ENV, "TELEMETRY_GRPC_PORT": str(port)})
    assert result.returncode != 0
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr + result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"), "api", "--grpc-port", "70000"],
        capture_output=True, text=True, timeout=60, env=_ENV)
    assert bad.returncode == 2 and "--grpc-port" in bad.stderr and "70000" in bad.stderr


def test_grpc_port_in_the_config_is_checked(tmp_path: Path) -> None:
    from vibekit_telemetry.config import TelemetryConfig
    from vibekit_telemetry.errors import ValidationError

    assert TelemetryConfig(api={"grpc_port": 50051}).api.grpc_port == 50051
    assert TelemetryConfig().api.grpc_port is None  # off unless asked for
    with pytest.raises((ValidationError, ValueError), match="grpc_port"):
        TelemetryConfig(api={"grpc_port": 70000})
