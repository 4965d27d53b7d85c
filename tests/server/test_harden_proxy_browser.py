"""Issue 7, attacks 3 and 4 on real servers: forged X-Forwarded-For, cross-site writes from a web page."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Serve, start_event
from test_api_ratelimit import REDIS_URL, _redis_up
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from servers import ServerProcess
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server import ServerHandle, ServerSettings

EVIL = "https://evil.example"
BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.skipif(
    not _redis_up(), reason="Redis is not running on 127.0.0.1:6379"))]


def _limits(backend: str) -> dict[str, Any]:
    # Redis keeps counts between runs: a window length of its own gives this run fresh buckets.
    options: dict[str, Any] = {"read_limit": 3, "rate_window_s": 60 + random.random()}
    if backend == "redis":
        options["redis_url"] = REDIS_URL
    return options


@pytest.mark.parametrize("backend", BACKENDS)
def test_attack_3_forged_forwarded_for_buys_no_fresh_budget(serve: Serve, backend: str) -> None:
    handle = serve(**_limits(backend))  # auth off: one budget per client IP
    with httpx.Client(base_url=handle.url) as http:
        statuses = [http.get("/api/stats", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                    for i in range(8)]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}, statuses


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trusted_proxy_forwards_the_client_address(serve: Serve, backend: str) -> None:
    handle = serve(**_limits(backend), trusted_proxies=["127.0.0.0/8"])
    with httpx.Client(base_url=handle.url) as http:
        first = [http.get("/api/stats", headers={"X-Forwarded-For": "203.0.113.7"}).status_code for _ in range(4)]
        other = http.get("/api/stats", headers={"X-Forwarded-For": "203.0.113.8"}).status_code
    assert first == [200, 200, 200, 429] and other == 200


def test_untrusted_peer_gets_no_proxy_treatment(serve: Serve) -> None:
    # The proxy allow-list names another network: requests from 127.0.0.1 are taken at face value.
    handle = serve(read_limit=2, rate_window_s=60, trusted_proxies=["10.0.0.0/8"])
    with httpx.Client(base_url=handle.url) as http:
        statuses = [http.get("/api/stats", headers={"X-Forwarded-For": f"10.1.1.{i}",
                                                    "X-Forwarded-Proto": "https"}) for i in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert "strict-transport-security" not in statuses[0].headers


def test_access_log_records_the_socket_peer_unless_told_to_trust(tmp_path: Path) -> None:
    forged = {"X-Forwarded-For": "198.51.100.66"}
    with ServerProcess(tmp_path / "a.db") as plain:
        httpx.get(plain.url + "/api/stats", headers=forged)
        log = plain.stop()
    assert '127.0.0.1:' in log and "GET /api/stats" in log and "198.51.100.66" not in log, log
    with ServerProcess(tmp_path / "b.db", "--trust-proxy", "127.0.0.1") as proxied:
        httpx.get(proxied.url + "/api/stats", headers=forged)
        log = proxied.stop()
    assert '198.51.100.66:0 - "GET /api/stats' in log, log


def test_trust_proxy_settings_are_validated() -> None:
    assert ServerSettings.resolve(trusted_proxies=["10.1.2.3", "fd00::/8"]).trusted_proxies == (
        "10.1.2.3/32", "fd00::/8")
    assert ServerSettings.resolve(trust_proxy_headers=True).trusted_proxies == ("127.0.0.1/32", "::1/128")
    assert not ServerSettings.resolve().trust_proxy_headers
    with pytest.raises(ValidationError, match="trusted_proxies"):
        ServerSettings.resolve(trusted_proxies=["not-a-network"])


def _count(handle: ServerHandle) -> int:
    count: int = httpx.get(handle.url + "/api/events").json()["count"]
    return count


def test_attack_4_text_plain_post_from_another_site_is_refused(server: ServerHandle) -> None:
    body = json.dumps(start_event("csrf"))
    # What a page's `fetch(url, {method: "POST", body, mode: "no-cors"})` sends: no preflight needed.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        for origin in (EVIL, None):
            headers = {"Content-Type": content_type, **({"Origin": origin} if origin else {})}
            response = httpx.post(server.url + "/api/events?wait=true", content=body, headers=headers)
            assert response.status_code in (403, 415), (content_type, origin, response.text)
            assert response.json()["details"][0]["field"] in ("Origin", "Content-Type")
    # A body with no Content-Type at all (a Blob without a type) is refused the same way.
    untyped = httpx.post(server.url + "/api/events?wait=true", content=body.encode())
    assert untyped.status_code == 415
    assert _count(server) == 0


def test_attack_4_json_from_a_foreign_origin_is_refused(server: ServerHandle) -> None:
    for origin in (EVIL, "null", f"http://evil.example:{server.port}", "http://127.0.0.1:1"):
        response = httpx.post(server.url + "/api/events?wait=true", json=start_event("x"), headers={"Origin": origin})
        assert response.status_code == 403, (origin, response.text)
        assert response.json()["error"] == "Forbidden"
    deleted = httpx.delete(server.url + "/api/events?older_than=0d", headers={"Origin": EVIL})
    assert deleted.status_code == 403
    assert _count(server) == 0


def test_the_servers_own_origin_and_allowed_origins_may_write(serve: Serve) -> None:
    handle = serve(cors_origins=["https://dash.example.com"])
    own = [f"http://127.0.0.1:{handle.port}", f"http://localhost:{handle.port}"]
    for origin in [*own, "https://dash.example.com"]:
        response = httpx.post(handle.url + "/api/events?wait=true", json=start_event(origin),
                              headers={"Origin": origin})
        assert response.status_code == 200, (origin, response.text)
    ndjson = httpx.post(handle.url + "/api/events?wait=true", content=json.dumps(start_event("nd")) + "\n",
                        headers={"Content-Type": "application/x-ndjson"})
    assert ndjson.status_code == 200
    assert _count(handle) == 4


def test_websocket_from_a_foreign_origin_is_refused(server: ServerHandle) -> None:
    url = server.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin=Origin(EVIL))
    assert refused.value.response.status_code == 403
    with connect(url, origin=Origin(f"http://127.0.0.1:{server.port}")) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connected"


def test_raw_simple_request_with_a_body_and_no_content_type(server: ServerHandle) -> None:
    body = json.dumps(start_event("raw")).encode()
    host, port = server.url.removeprefix("http://").split(":")
    request = (f"POST /api/events?wait=true HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(request)
        status = raw.recv(100).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 415")
    assert _count(server) == 0


def test_routes_bring_their_own_body_types_but_never_simple_ones() -> None:
    from fastapi import FastAPI

    from vibekit_telemetry.server.browser_guard import declared_body_types

    app = FastAPI()
    body = {"requestBody": {"content": {"application/x-protobuf": {}, "text/plain": {}}}}
    app.post("/v1/traces", openapi_extra=body)(lambda: None)
    app.post("/v1/other")(lambda: None)
    [(pattern, types)] = declared_body_types(app.routes)
    assert pattern.match("/v1/traces") and not pattern.match("/v1/other")
    assert "application/x-protobuf" in types and "application/json" in types and "text/plain" not in types
