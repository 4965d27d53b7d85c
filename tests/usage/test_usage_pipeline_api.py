"""POST /api/pipeline on a real server: durable 200, strict whitelist, bad input refused, ingest budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from usage_support import payload

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import ServerHandle, start_api_server


@pytest.fixture
def telemetry(tmp_path: Path) -> Iterator[Telemetry]:
    instance = Telemetry(db_path=str(tmp_path / "t.db"), stream_flush_interval_ms=5)
    yield instance
    instance.shutdown()


@pytest.fixture
def server(telemetry: Telemetry) -> Iterator[ServerHandle]:
    handle = start_api_server(telemetry, port=0)
    yield handle
    handle.stop()


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _stored(telemetry: Telemetry) -> list[dict[str, object]]:
    # No flush: a 200 means the payload is already committed.
    return [e.metadata["usage"] for e in telemetry.query(category="usage") if e.metadata]


def test_payload_is_committed_before_the_answer(client: httpx.Client, telemetry: Telemetry) -> None:
    answer = client.post("/api/pipeline", json={"data": payload()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["committed"] is True and answer.json()["dropped"] == []
    assert _stored(telemetry) == [payload()]


def test_unknown_fields_are_dropped_never_stored(client: httpx.Client, telemetry: Telemetry, tmp_path: Path) -> None:
    personal = payload(email="jane@example.com", prompt="my secret prompt", cwd="/home/jane/project")
    answer = client.post("/api/pipeline", json={"data": personal, "extra": {"ip": "1.2.3.4"}})
    assert answer.status_code == 200
    assert answer.json()["dropped"] == ["cwd", "email", "prompt"]
    assert _stored(telemetry) == [payload()]
    telemetry.flush()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))
    assert b"jane@example.com" not in raw and b"my secret prompt" not in raw


@pytest.mark.parametrize(("field", "value"), [
    ("duration", "slow"), ("promptTokens", -1), ("promptTokens", 1.5), ("hasError", "yes"),
    ("options", ["debug"]), ("model", {"name": "x"}), ("timestamp", "yesterday"), ("timestamp", "0001-01-01T00:00:00Z"),
    ("timestamp", "9999-12-31T23:59:59Z"), ("timestamp", "2025-13-01T00:00:00Z"), ("eventName", "other"),
    ("userId", None), ("command", "x" * 500),
])
def test_wrong_types_are_refused_naming_the_field(client: httpx.Client, telemetry: Telemetry, field: str,
                                                  value: object) -> None:
    answer = client.post("/api/pipeline", json={"data": payload(**{field: value})})
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"][0]["field"] == f"data.{field}"
    assert _stored(telemetry) == []


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"data": {"eventName": "command_executed", "userId": "\xff\xfe"}}', "application/json", 400),
    (b"not json", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b'{"nodata": {}}', "application/json", 400),
    (b"", "application/json", 400),
    (json.dumps({"data": payload()}).encode(), "text/plain", 415),
])
def test_malformed_bodies_are_refused(client: httpx.Client, telemetry: Telemetry, body: bytes,
                                      content_type: str, status: int) -> None:
    answer = client.post("/api/pipeline", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] and answer.json()["message"]
    assert _stored(telemetry) == []


def test_huge_bodies_are_refused(client: httpx.Client, telemetry: Telemetry) -> None:
    twenty_mb = json.dumps({"data": payload(command="x" * (20 * 1024 * 1024))}).encode()
    answer = client.post("/api/pipeline", content=twenty_mb, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    big = json.dumps({"data": payload(), "pad": "x" * 100_000}).encode()  # under the server limit, not a payload
    answer = client.post("/api/pipeline", content=big, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "usage payload" in answer.json()["message"]
    assert _stored(telemetry) == []


def test_needs_no_credential_when_auth_is_on(telemetry: Telemetry) -> None:
    handle = start_api_server(telemetry, port=0, api_keys=["k-123456789012345678901234:read"])
    try:
        assert httpx.get(f"{handle.url}/api/events").status_code == 401
        answer = httpx.post(f"{handle.url}/api/pipeline", json={"data": payload()})
        assert answer.status_code == 200
    finally:
        handle.stop()


def test_ingest_budget_is_per_client_address(telemetry: Telemetry) -> None:
    handle = start_api_server(telemetry, port=0, ingest_limit=3)
    try:
        codes = [httpx.post(f"{handle.url}/api/pipeline", json={"data": payload(sessionId=f"s{i}")}).status_code
                 for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert len(_stored(telemetry)) == 3
    finally:
        handle.stop()
