"""broadcast(channel, data) reaches subscribers of every transport: in-process, WebSocket, SSE and gRPC, on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")
pytest.importorskip("grpc_tools", reason="the grpc extra (grpcio-tools) is not installed")
pytest.importorskip("websockets.sync.client", reason="websockets is not installed")

import grpc
import httpx
from websockets.sync import client as ws_client

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.streaming import ChannelProvider
from vibekit_telemetry.streaming.grpc_service import GrpcStreamClient, GrpcStreamServer


class Collected:
    """Messages a background reader gathered; wait_for() a condition on them."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Condition()

    def add(self, item: Any) -> None:
        with self.lock:
            self.items.append(item)
            self.lock.notify_all()

    def wait_for(self, test: Callable[[list[Any]], bool], timeout: float = 10) -> list[Any]:
        with self.lock:
            assert self.lock.wait_for(lambda: test(self.items), timeout), self.items
            return list(self.items)


def _read_grpc(call: Any, into: Collected) -> None:
    try:
        for message in call:
            into.add(message)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            raise


def _read_sse(url: str, into: Collected, connected: threading.Event, stop: threading.Event) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, read=30)) as http, http.stream("GET", url) as response:
        kind = "message"
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                if kind == "connected":
                    connected.set()
                elif kind == "broadcast":
                    into.add(json.loads(line[6:]))
            elif not line:
                kind = "message"


def _broadcasts(messages: list[Any], channel: str) -> list[Any]:
    return [m for m in messages if m.get("type") == "broadcast" and m["channel"] == channel]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Telemetry, str, str]]:
    with Telemetry(db_path=str(tmp_path / "t.db")) as telemetry:
        server = telemetry.start_api_server(0)
        stream_server = GrpcStreamServer(telemetry, port=0).start()
        try:
            yield telemetry, str(server.url), stream_server.target
        finally:
            stream_server.stop()
            server.stop()


def test_a_provider_broadcast_reaches_every_transport(live: tuple[Telemetry, str, str]) -> None:
    telemetry, url, target = live
    provider = ChannelProvider()
    provider.initialize(telemetry)
    local: list[Any] = []
    provider.subscribe("alerts", local.append)
    other_provider_saw: list[Any] = []
    other = ChannelProvider()
    other.initialize(telemetry)  # a second provider of the same Telemetry hears it too: one bus
    other.subscribe("alerts", other_provider_saw.append)

    grpc_client = GrpcStreamClient(target)
    from_grpc = Collected()
    call = grpc_client.listen(channels=["alerts", "warmup"], session_ids=["s-1"])
    threading.Thread(target=_read_grpc, args=(call, from_grpc), daemon=True).start()
    sse_got = Collected()
    sse_connected, sse_stop = threading.Event(), threading.Event()
    threading.Thread(target=_read_sse, args=(url + "/api/stream?channel=alerts", sse_got, sse_connected, sse_stop),
                     daemon=True).start()
    ws_base = "ws" + url.removeprefix("http") + "/ws"
    with ws_client.connect(ws_base + "?channel=alerts") as alerts_ws, \
            ws_client.connect(ws_base + "?session_id=s-1") as session_ws:
        assert json.loads(alerts_ws.recv(timeout=10))["channels"] == ["alerts"]
        assert json.loads(session_ws.recv(timeout=10))["channels"] == ["session:s-1"]
        assert sse_connected.wait(10)
        # A gRPC call is registered once the server runs it: broadcast on a warm-up channel until it hears.
        for attempt in range(100):
            telemetry.broadcast("warmup", attempt)
            if from_grpc.items:
                break
            time.sleep(0.05)

        provider.broadcast("alerts", {"level": "high", "tags": ["disk"]})
        provider.broadcast("session:s-1", {"note": "for s-1 only"})
        provider.broadcast("alerts", {"level": "low"})

        alerts = [json.loads(alerts_ws.recv(timeout=10)) for _ in range(2)]
        assert [(m["type"], m["channel"], m["data"]) for m in alerts] == [
            ("broadcast", "alerts", {"level": "high", "tags": ["disk"]}), ("broadcast", "alerts", {"level": "low"})]
        # In order, and nothing of session:s-1 in between: only the rooms a connection is in.
        session_message = json.loads(session_ws.recv(timeout=10))
        assert (session_message["channel"], session_message["data"]) == ("session:s-1", {"note": "for s-1 only"})
    got = sse_got.wait_for(lambda items: len(items) >= 2)
    assert [m["data"] for m in _broadcasts(got, "alerts")] == [{"level": "high", "tags": ["disk"]}, {"level": "low"}]
    sse_stop.set()
    heard = from_grpc.wait_for(lambda items: len([m for m in items if m.broadcast.channel != "warmup"]) >= 3)
    call.cancel()
    grpc_client.close()
    assert [(m.broadcast.channel, json.loads(m.broadcast.data_json)) for m in heard
            if m.WhichOneof("kind") == "broadcast" and m.broadcast.channel != "warmup"] == [
        ("alerts", {"level": "high", "tags": ["disk"]}), ("session:s-1", {"note": "for s-1 only"}),
        ("alerts", {"level": "low"})]
    assert local == other_provider_saw == [{"level": "high", "tags": ["disk"]}, {"level": "low"}]
    provider.shutdown()
    other.shutdown()


def test_grpc_listen_gets_events_and_broadcasts_in_one_stream(live: tuple[Telemetry, str, str]) -> None:
    telemetry, _, target = live
    client = GrpcStreamClient(target)
    got = Collected()
    call = client.listen(categories=["claude"])
    threading.Thread(target=_read_grpc, args=(call, got), daemon=True).start()
    for attempt in range(100):
        telemetry.track({"event_type": "start", "session_id": f"s{attempt}", "agent_type": "claude"})
        assert telemetry.flush()
        if got.items:
            break
        time.sleep(0.05)
    telemetry.broadcast("category:claude", {"deploy": "v2"})
    items = got.wait_for(lambda items: any(m.WhichOneof("kind") == "broadcast" for m in items))
    call.cancel()
    client.close()
    assert items[0].WhichOneof("kind") == "event" and items[0].event.category == "claude"
    broadcast = next(m.broadcast for m in items if m.WhichOneof("kind") == "broadcast")
    assert broadcast.channel == "category:claude" and json.loads(broadcast.data_json) == {"deploy": "v2"}
    assert broadcast.timestamp > 0


def test_bad_broadcasts_are_refused_with_the_field_named(live: tuple[Telemetry, str, str]) -> None:
    telemetry, _, target = live
    provider = ChannelProvider()
    provider.initialize(telemetry)
    seen: list[Any] = []
    provider.subscribe("all", seen.append)
    with pytest.raises(ValidationError, match="channel"):
        provider.broadcast("planet:x", {"a": 1})
    with pytest.raises(ValidationError, match="channel"):
        telemetry.broadcast("", {"a": 1})
    with pytest.raises(ValidationError, match="data"):
        provider.broadcast("all", {"when": object()})
    with pytest.raises(ValidationError, match="data"):
        telemetry.broadcast("all", float("nan"))
    assert seen == []  # nothing half-sent
    client = GrpcStreamClient(target)
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(client.listen(channels=["no spaces allowed"])))
    client.close()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "channel" in (raised.value.details() or "")
    provider.shutdown()
