"""Issue 7, attack 7: hostile WebSocket messages, and replies that must not be dropped like events."""

from __future__ import annotations

import json
import threading

import pytest
from api_support import Serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vibekit_telemetry.server import ServerHandle


def _ws(handle: ServerHandle) -> str:
    return handle.url.replace("http://", "ws://") + "/ws"


def test_a_message_nested_100000_levels_closes_with_1008_and_a_reason(server: ServerHandle) -> None:
    with connect(_ws(server), max_size=None) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        ws.send("[" * 100_000 + "]" * 100_000)
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "nested" in error["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1008
        assert ws.close_reason is not None and "nested more than" in ws.close_reason


def test_bad_json_is_answered_and_the_connection_stays(server: ServerHandle) -> None:
    with connect(_ws(server)) as ws:
        ws.recv(timeout=10)
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        ws.send(json.dumps({"type": "ping", "id": 1}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong", "id": 1}


def test_2000_subscribe_replies_all_arrive_with_a_small_event_buffer(serve: Serve) -> None:
    handle = serve(stream_buffer=10)  # events may be dropped past 10; replies never are
    commands = 2000
    with connect(_ws(handle)) as ws:
        ws.recv(timeout=10)

        def send_all() -> None:
            for i in range(commands):
                ws.send(json.dumps({"type": "subscribe", "id": i, "channel": f"session:s{i}"}))

        sender = threading.Thread(target=send_all)
        sender.start()
        replies: list[dict[str, object]] = []
        while sum(r.get("type") == "subscribed" for r in replies) < commands:
            message = json.loads(ws.recv(timeout=30))
            replies.extend(message["messages"] if message["type"] == "batch" else [message])
        sender.join(30)
    subscribed = [r for r in replies if r.get("type") == "subscribed"]
    assert [r["id"] for r in subscribed] == list(range(commands))
    assert not [r for r in replies if r.get("type") == "dropped"]
