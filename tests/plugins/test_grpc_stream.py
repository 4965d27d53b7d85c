"""The gRPC TelemetryStream service on a real loopback port: live subscription and client-stream ingest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("grpc_tools", reason="the grpc extra (grpcio-tools) is not installed")
pytest.importorskip("fastapi", reason="the server extra is not installed (API keys)")

import grpc

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server.settings import ServerSettings
from vibekit_telemetry.streaming.grpc_service import GrpcStreamClient, GrpcStreamServer

KEY = "vkt_" + "g" * 40


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Telemetry, GrpcStreamServer]]:
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"))
    server = GrpcStreamServer(telemetry, port=0).start()
    yield telemetry, server
    server.stop()
    telemetry.shutdown()


def _collect(call: Any, want: int, into: list[Any], ready: threading.Event) -> None:
    ready.set()
    try:
        for message in call:
            into.append(message)
            if len(into) == want:
                call.cancel()
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:  # our own cancel ends the loop; anything else is a failure
            raise


def test_subscription_receives_live_events_of_its_session(served: tuple[Telemetry, GrpcStreamServer]) -> None:
    telemetry, server = served
    client = GrpcStreamClient(server.target)
    call = client.subscribe(session_ids=["s-1"])
    got: list[Any] = []
    ready = threading.Event()
    reader = threading.Thread(target=_collect, args=(call, 2, got, ready))
    reader.start()
    ready.wait(5)
    # The subscription is registered once the server runs the call: keep tracking until it sees events.
    for attempt in range(200):
        telemetry.track({"event_type": "stream", "session_id": "s-1", "agent_type": "claude",
                         "stream_data": f"chunk {attempt}", "metadata": {"n": attempt}})
        telemetry.track({"event_type": "stream", "session_id": "s-2", "agent_type": "claude", "stream_data": "x"})
        telemetry.flush()
        reader.join(0.05)
        if not reader.is_alive():
            break
    reader.join(5)
    client.close()
    assert len(got) == 2
    assert all(m.session_id == "s-1" and m.category == "claude" and m.event_id for m in got)
    assert '"n"' in got[0].metadata_json


def test_client_stream_ingests_batches_durably(served: tuple[Telemetry, GrpcStreamServer]) -> None:
    telemetry, server = served
    client = GrpcStreamClient(server.target)
    batches = [[{"event_type": "start", "session_id": f"b{i}", "category": "codex", "label": "go",
                 "metadata": {"i": i}} for i in range(j * 10, j * 10 + 10)] for j in range(3)]
    reply = client.ingest(batches)
    client.close()
    assert (reply.accepted, reply.batches) == (30, 3)
    stored = telemetry.query(category="codex")  # committed before the reply: no flush needed
    assert len(stored) == 30 and sorted(e.metadata["i"] for e in stored if e.metadata) == list(range(30))


def test_bad_batch_is_refused_with_the_field_named(served: tuple[Telemetry, GrpcStreamServer]) -> None:
    telemetry, server = served
    client = GrpcStreamClient(server.target)
    good = [{"event_type": "start", "session_id": "ok", "category": "claude"}]
    bad = [{"event_type": "start", "session_id": "bad", "category": "claude"}, {"event_type": "sideways"}]
    with pytest.raises(grpc.RpcError) as raised:
        client.ingest([good, bad])
    client.close()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batches[1]" in (raised.value.details() or "") and "event_type" in (raised.value.details() or "")
    assert [e.session_id for e in telemetry.query()] == ["ok"]  # the bad batch wrote nothing


def test_api_keys_guard_the_service(tmp_path: Path) -> None:
    with Telemetry(db_path=str(tmp_path / "t.db")) as telemetry:
        settings = ServerSettings.resolve(auth=True, api_keys=[f"{KEY}:ingest"])
        server = GrpcStreamServer(telemetry, port=0, settings=settings).start()
        try:
            anonymous = GrpcStreamClient(server.target)
            with pytest.raises(grpc.RpcError) as raised:
                anonymous.ingest([[{"event_type": "start", "session_id": "x", "category": "claude"}]])
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            keyed = GrpcStreamClient(server.target, api_key=KEY)
            assert keyed.ingest([[{"event_type": "start", "session_id": "x", "category": "claude"}]]).accepted == 1
            with pytest.raises(grpc.RpcError) as denied:
                next(iter(keyed.subscribe()))  # ingest-only key: no read scope
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            anonymous.close()
            keyed.close()
        finally:
            server.stop()
