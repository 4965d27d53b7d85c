"""Streaming providers over real transports: in-process channels, the API server's /ws and SSE, gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.streaming import ChannelProvider, GrpcProvider, SSEProvider, StreamingProvider, WebSocketProvider


@pytest.fixture
def telemetry(tmp_path: Path) -> Iterator[Telemetry]:
    with Telemetry(db_path=str(tmp_path / "t.db")) as t:
        yield t


def test_channels_get_stream_events_and_broadcasts(telemetry: Telemetry) -> None:
    provider = ChannelProvider()
    assert isinstance(provider, StreamingProvider)
    by_session: list[Any] = []
    by_category: list[Any] = []
    custom: list[Any] = []
    provider.subscribe("session:s-1", by_session.append)
    provider.subscribe("category:codex", by_category.append)
    provider.subscribe("alerts", custom.append)
    provider.subscribe("alerts", lambda data: 1 / 0)  # a failing handler is counted, the others still run
    provider.initialize(telemetry)
    telemetry.track({"event_type": "start", "session_id": "s-1", "agent_type": "claude"})
    telemetry.track({"event_type": "start", "session_id": "s-2", "agent_type": "codex"})
    assert telemetry.flush()
    provider.broadcast("alerts", {"level": "high"})
    assert [e.session_id for e in by_session] == ["s-1"] and [e.session_id for e in by_category] == ["s-2"]
    assert custom == [{"level": "high"}] and provider.errors == 1
    provider.unsubscribe("session:s-1", by_session.append)
    provider.shutdown()
    telemetry.track({"event_type": "end", "session_id": "s-1"})
    assert telemetry.flush() and len(by_session) == 1
    with pytest.raises(ValidationError, match="channel"):
        provider.subscribe("", print)


def test_websocket_provider_shares_the_api_servers_ws_endpoint(telemetry: Telemetry) -> None:
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    client = pytest.importorskip("websockets.sync.client", reason="websockets is not installed")
    provider = WebSocketProvider(port=0)
    provider.initialize(telemetry)
    try:
        assert provider.url.startswith("ws://127.0.0.1:") and provider.url.endswith("/ws")
        with client.connect(provider.url + "?session_id=s-ws") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "connected"
            telemetry.track({"event_type": "start", "session_id": "other", "agent_type": "claude"})
            telemetry.track({"event_type": "start", "session_id": "s-ws", "agent_type": "claude"})
            assert telemetry.flush()
            message = json.loads(ws.recv(timeout=10))
            assert message["type"] == "event" and "s-ws" in json.dumps(message)
    finally:
        provider.shutdown()
    assert not provider.server.running


def test_sse_provider_streams_from_api_stream(telemetry: Telemetry) -> None:
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    httpx = pytest.importorskip("httpx", reason="httpx is not installed")
    provider = SSEProvider(port=0)
    provider.initialize(telemetry)
    try:
        assert provider.url.endswith("/api/stream")
        with httpx.stream("GET", provider.url, params={"session_id": "s-sse"}, timeout=10) as response:
            assert response.status_code == 200
            telemetry.track({"event_type": "start", "session_id": "s-sse", "agent_type": "claude"})
            assert telemetry.flush()
            for line in response.iter_lines():
                if line.startswith("data:") and "s-sse" in line:
                    break
            else:
                pytest.fail("the stream ended without the event")
    finally:
        provider.shutdown()


def test_grpc_provider_serves_the_stream_service(telemetry: Telemetry) -> None:
    pytest.importorskip("grpc_tools", reason="the grpc extra is not installed")
    from vibekit_telemetry.streaming.grpc_service import GrpcStreamClient

    provider = GrpcProvider(port=0)
    seen: list[Any] = []
    provider.subscribe("category:gemini", seen.append)
    provider.initialize(telemetry)
    try:
        client = GrpcStreamClient(provider.target)
        assert client.ingest([[{"event_type": "start", "session_id": "g", "category": "gemini"}]]).accepted == 1
        client.close()
        assert telemetry.flush() and [e.session_id for e in seen] == ["g"]
    finally:
        provider.shutdown()
