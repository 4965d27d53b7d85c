"""The live-stream replica feed on PostgreSQL: another writer's events reach the stream, and a lost
listener connection is re-opened without losing what committed meanwhile (one server in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from replica_support import wait_for
from websockets.sync.client import connect

from vibekit_telemetry import Telemetry
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.store.sql import SQLStore

KEY = "feed-key-0123456789abcdef"


@pytest.fixture
def served(pg_url: str) -> Iterator[tuple[Telemetry, Any]]:
    """A Telemetry on the test schema with its API server on a loopback port."""
    telemetry = Telemetry(database_url=pg_url, stream_flush_interval_ms=20)
    server = telemetry.start_api_server(port=0, api_key=f"{KEY}:ingest+read")
    yield telemetry, server
    server.stop()
    telemetry.shutdown()


def _next_event(ws: Any) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message["type"] == "event":
            event: dict[str, Any] = message["event"]
            return event


def _other_replica_writes(pg_url: str, label: str) -> None:
    """Another replica's writer: its own store on the same database commits one event."""
    other = SQLStore(pg_url)
    try:
        other.store_batch([TelemetryEvent("custom", "claude", label=label, event_id=label, timestamp=now_ms())])
        channel = other.commit_notices()  # and announces it, as a replica's feed does after a commit
        assert channel is not None
        channel.notify("another-replica")
        channel.close()
    finally:
        other.shutdown()


def test_the_stream_shows_another_writers_events_and_survives_a_lost_listener(
        served: tuple[Telemetry, Any], pg_url: str) -> None:
    _, server = served
    feed = server.app.state.replica_feed
    assert feed is not None  # PostgreSQL: the hub follows the change log
    url = server.url.replace("http://", "ws://") + "/ws?channel=category:claude"
    with connect(url, additional_headers={"X-API-Key": KEY}) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "connected"
        _other_replica_writes(pg_url, "from-elsewhere")
        assert _next_event(ws)["event_id"] == "from-elsewhere"

        # PostgreSQL ends the listener's session (a restart, a failover, an idle timeout).
        listener = feed._channel._conn.info.backend_pid
        admin = SQLStore(pg_url)
        with admin.engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": listener})
        admin.shutdown()
        _other_replica_writes(pg_url, "while-reconnecting")
        answer = httpx.post(server.url + "/api/events", headers={"X-API-Key": KEY}, timeout=30, json={
            "event_type": "custom", "category": "claude", "label": "local", "event_id": "local"})
        assert answer.status_code == 200
        got = [_next_event(ws)["event_id"], _next_event(ws)["event_id"]]
        assert sorted(got) == ["local", "while-reconnecting"]  # each once, none lost
        wait_for(lambda: feed.errors >= 1, "the feed to notice the lost connection")
        assert feed._channel is not None and feed._channel._conn.info.backend_pid != listener
    health = httpx.get(server.url + "/api/health", headers={"X-API-Key": KEY}, timeout=30).json()
    shown = health["streams"]["replica_feed"]
    assert shown["published"] >= 3 and shown["errors"] >= 1 and shown["last_error"]


def test_sqlite_keeps_the_direct_path(tmp_path: Any) -> None:
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"))
    server = telemetry.start_api_server(port=0)
    try:
        assert server.app.state.replica_feed is None
    finally:
        server.stop()
        telemetry.shutdown()
