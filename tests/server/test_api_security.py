"""Auth scopes, CORS, security headers, body limits, bad bodies, rate limits — on a real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from api_support import Serve, start_event

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server import ServerHandle, ServerSettings
from vibekit_telemetry.server.auth import key_id

ADMIN, INGEST, READ = "admin-key-0123456789", "ingest-key-0123456789", "read-key-0123456789"
TOKEN = "tok-abc-0123456789ab"


@pytest.fixture
def secured(serve: Serve) -> ServerHandle:
    """A server with auth on: one key per scope and a bearer token with every scope."""
    return serve(api_keys=[ADMIN, f"{INGEST}:ingest", f"{READ}:read"], bearer_tokens=[TOKEN])


def _get(handle: ServerHandle, path: str, **headers: str) -> httpx.Response:
    return httpx.get(handle.url + path, headers=headers)


def _post(handle: ServerHandle, path: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(handle.url + path, json=body, headers=headers)


def test_auth_refuses_missing_and_wrong_credentials(secured: ServerHandle) -> None:
    missing = _get(secured, "/api/events")
    assert missing.status_code == 401
    assert missing.json()["error"] == "Unauthorized" and "WWW-Authenticate" in missing.headers
    wrong = _get(secured, "/api/events", **{"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "invalid" in wrong.json()["message"]
    assert _get(secured, "/api/events", Authorization="Bearer nope").status_code == 401
    assert _get(secured, "/api/events", Authorization=f"Basic {TOKEN}").status_code == 401


def test_scopes(secured: ServerHandle) -> None:
    event = start_event("s1")
    # ingest-only key: may send, may not read
    assert _post(secured, "/api/events", event, **{"X-API-Key": INGEST}).status_code == 200
    refused = _get(secured, "/api/events", **{"X-API-Key": INGEST})
    assert refused.status_code == 403 and "'read'" in refused.json()["message"]
    assert key_id(INGEST) in refused.json()["message"] and INGEST not in refused.text
    # read-only key: may read, may not send or delete
    assert _get(secured, "/api/events", **{"X-API-Key": READ}).status_code == 200
    assert _post(secured, "/api/events", event, **{"X-API-Key": READ}).status_code == 403
    assert httpx.delete(secured.url + "/api/sessions/s1", headers={"X-API-Key": READ}).status_code == 403
    # admin key and the unscoped bearer token may do everything
    assert _get(secured, "/api/stats", **{"X-API-Key": ADMIN}).status_code == 200
    assert _post(secured, "/api/events?wait=true", event, Authorization=f"Bearer {TOKEN}").status_code == 200
    deleted = httpx.delete(secured.url + "/api/sessions/s1", headers={"X-API-Key": ADMIN})
    assert deleted.status_code == 200


def test_audit_log_records_the_key_id_never_the_key(secured: ServerHandle, telemetry: Telemetry) -> None:
    _post(secured, "/api/events?wait=true", start_event("gone"), **{"X-API-Key": ADMIN})
    assert httpx.delete(secured.url + "/api/sessions/gone", headers={"X-API-Key": ADMIN}).status_code == 200
    assert _get(secured, "/api/events/export", **{"X-API-Key": READ}).status_code == 200
    log = telemetry.store.audit_log(10)  # type: ignore[attr-defined]
    assert {(e["action"], e["actor"]) for e in log} == {("delete", key_id(ADMIN)), ("export", key_id(READ))}
    assert ADMIN not in json.dumps(log) and READ not in json.dumps(log)


def test_health_public_metrics_private_by_default(secured: ServerHandle, serve: Serve) -> None:
    assert _get(secured, "/health").status_code == 200
    assert _get(secured, "/health/ready").status_code == 200
    assert _get(secured, "/metrics").status_code == 401
    assert _get(secured, "/metrics", **{"X-API-Key": READ}).status_code == 200
    open_metrics = serve(api_keys=[ADMIN], public_metrics=True, public_health=False)
    assert _get(open_metrics, "/metrics").status_code == 200
    assert _get(open_metrics, "/health").status_code == 401


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, telemetry: Telemetry) -> None:
    monkeypatch.setenv("TELEMETRY_AUTH_ENABLED", "true")
    monkeypatch.setenv("TELEMETRY_API_KEYS", "k1-0123456789abcdef,k2-0123456789abcdef:read")
    monkeypatch.setenv("TELEMETRY_BEARER_TOKENS", "t1-0123456789abcdef")
    monkeypatch.setenv("TELEMETRY_ALLOWED_ORIGINS", "https://app.example.com, https://dash.example.com")
    settings = ServerSettings.resolve(telemetry.config.api)
    assert settings.auth_enabled
    assert [(c.kind, sorted(c.scopes)) for c in settings.credentials] == [
        ("api_key", ["admin", "ingest", "read"]), ("api_key", ["read"]), ("bearer", ["admin", "ingest", "read"])]
    assert settings.allowed_origins == ("https://app.example.com", "https://dash.example.com")
    assert "k1-0123" not in repr(settings)  # secrets never show in reprs or logs
    monkeypatch.setenv("TELEMETRY_API_KEYS", "")
    monkeypatch.setenv("TELEMETRY_BEARER_TOKENS", "")
    with pytest.raises(ValidationError, match="at least one API key"):
        ServerSettings.resolve(telemetry.config.api)


def test_rate_limit_presets() -> None:
    default = ServerSettings.resolve().rate_limit
    assert (default.read_limit, default.ingest_limit, default.window_s) == (600, 6000, 60.0)
    strict = ServerSettings.resolve(rate_limit="strict").rate_limit
    assert (strict.read_limit, strict.ingest_limit, strict.window_s) == (100, 100, 900.0)
    assert not ServerSettings.resolve(rate_limit="off").rate_limit.enabled
    with pytest.raises(ValidationError):
        ServerSettings.resolve(rate_limit="lenient")


def test_cors_preflight_and_simple_requests(serve: Serve) -> None:
    handle = serve(cors_origins=["https://app.example.com"], api_keys=[ADMIN])
    preflight = httpx.options(handle.url + "/api/events", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "X-API-Key, Content-Type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    other = httpx.options(handle.url + "/api/events", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    simple = _get(handle, "/api/events", Origin="https://app.example.com", **{"X-API-Key": ADMIN})
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    # A refusal still carries CORS headers, so the browser app can read the error.
    refused = _get(handle, "/api/events", Origin="https://app.example.com")
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"]


def test_security_headers_on_success_and_errors(client: httpx.Client, serve: Serve) -> None:
    for response in (client.get("/api/events"), client.get("/nope"), client.post("/api/events", content=b"{")):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "strict-transport-security" not in headers
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]
    behind_tls = serve(trust_proxy_headers=True)
    response = httpx.get(behind_tls.url + "/health", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_body_over_the_limit_gets_413(serve: Serve) -> None:
    handle = serve(max_body_bytes=2048)
    big = [start_event(f"s{i}") for i in range(100)]
    response = httpx.post(handle.url + "/api/events", json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "Payload Too Large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b"["
        for i in range(100):
            yield json.dumps(start_event(f"c{i}")).encode() + b","
        yield b"{}]"

    chunked = httpx.post(handle.url + "/api/events", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_bad_bodies_get_4xx_with_the_error_shape(client: httpx.Client) -> None:
    cases = [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"42", "application/json", 400),
        (b'{"events": 3}', "application/json", 400),
        (b'{"event_type": "start", "category": "c", "value": NaN}', "application/json", 400),
        (b"\xff\xfe\x00", "application/json", 400),
        (b"[" * 50 + b"]" * 50, "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'{"metadata": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b', "event_type": "start", "category": "c"}',
         "application/json", 400),
        (b"<xml/>", "application/xml", 415),
        (b"a=b", "multipart/form-data; boundary=x", 415),
    ]
    for body, content_type, status in cases:
        response = client.post("/api/events", content=body, headers={"Content-Type": content_type})
        assert response.status_code == status, (body[:40], response.text)
        document = response.json()
        assert set(document) >= {"error", "message", "details"}, document
        assert "Traceback" not in response.text
    assert client.get("/api/events").json()["count"] == 0


def _raw(handle: ServerHandle, request: bytes) -> bytes:
    host, port = handle.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(request)
        raw.shutdown(socket.SHUT_WR)  # a client that gives up halfway through its body
        return raw.recv(200)


def test_malformed_http_never_gets_a_500(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.request("PATCH", "/api/events").status_code == 405
        assert http.get("/api/sessions/" + "x" * 600).status_code == 400
    for request in (b"GARBAGE / HTTP/1.1\r\n\r\n",
                    b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
                    b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10\r\nConnection: close\r\n\r\n{}"):
        status_line = _raw(server, request).split(b"\r\n", 1)[0]
        assert not status_line.startswith(b"HTTP/1.1 5"), (request, status_line)


def test_429_with_retry_after_past_the_budget(serve: Serve) -> None:
    handle = serve(rate_limit="default", read_limit=5, ingest_limit=3, rate_window_s=60)
    with httpx.Client(base_url=handle.url) as http:
        statuses = [http.get("/api/events").status_code for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
        limited = http.get("/api/stats")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 120  # sliding: the past window fades too
        assert limited.json()["error"] == "Too Many Requests"
        assert limited.headers["x-content-type-options"] == "nosniff"
        # ingest has its own budget; health probes are exempt
        assert [http.post("/api/events", json=start_event("r")).status_code for _ in range(4)] == \
            [200, 200, 200, 429]
        assert http.get("/health").status_code == 200
        assert 'telemetry_rate_limited_requests_total{budget="read"} 3.0' in http.get("/metrics").text


def test_rate_limit_counts_per_key_not_per_ip(serve: Serve) -> None:
    handle = serve(api_keys=["key-one-0123456789", "key-two-0123456789"], read_limit=2, rate_window_s=60)
    with httpx.Client(base_url=handle.url) as http:
        one = [http.get("/api/stats", headers={"X-API-Key": "key-one-0123456789"}).status_code for _ in range(3)]
        two = [http.get("/api/stats", headers={"X-API-Key": "key-two-0123456789"}).status_code for _ in range(2)]
    assert one == [200, 200, 429] and two == [200, 200]
