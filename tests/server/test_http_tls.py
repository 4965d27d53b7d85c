"""`telemetry api --tls-cert/--tls-key`: the HTTP API (REST, WebSocket, dashboard) over HTTPS only.

A real `telemetry api` process with a self-signed certificate made here; clients that trust it get
answers, a plaintext client and a client that does not trust it get none; bad pairs are errors naming
the option.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

pytest.importorskip("cryptography", reason="cryptography makes the test certificate")

from servers import ServerProcess, refused_api, self_signed
from vibekit_telemetry import Telemetry

KEY = "https-secret-0123456789abcdef"


def _trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts the test certificate (httpx's verify)."""
    return ssl.create_default_context(cafile=str(cert))


def test_the_api_speaks_https_only(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    db = tmp_path / "tls.db"
    with ServerProcess(db, "--tls-cert", str(cert), "--tls-key", str(key), "--auth", "--api-key",
                       f"{KEY}:read+ingest", "--dashboard", verify=_trusting(cert)) as server:
        assert server.url.startswith("https://127.0.0.1:"), server.output()
        with httpx.Client(base_url=server.url, verify=_trusting(cert), headers={"X-API-Key": KEY}) as client:
            answer = client.post("/api/events", json=[
                {"event_type": "start", "session_id": "tls-1", "category": "claude", "action": "code"},
                {"event_type": "end", "session_id": "tls-1", "metadata": {"status": "success"}}])
            assert answer.status_code == 200 and answer.json()["committed"] is True
            health = client.get("/health")
            assert health.status_code == 200
            # Over TLS the browser is told to stay on HTTPS.
            assert health.headers["strict-transport-security"].startswith("max-age=")
            assert client.get("/dashboard/").status_code == 200
            events = client.get("/api/events", params={"session_id": "tls-1"}).json()
            assert [e["event_type"] for e in events["events"]] == ["start", "end"]
        # A client speaking plain HTTP to the port gets no HTTP answer at all.
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https://", "http://") + "/health", timeout=5)
        # Nor does one that does not trust the certificate.
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/health", timeout=5)
        _live_event_over_wss(server.url, cert)
    with Telemetry(db_path=str(db)) as telemetry:
        session = telemetry.get_session("tls-1")
        assert session is not None and session.status == "completed"


def _live_event_over_wss(url: str, cert: Path) -> None:
    """A WebSocket subscriber over wss:// gets an event posted over HTTPS."""
    from websockets.sync.client import connect

    with connect(url.replace("https://", "wss://") + f"/ws?api_key={KEY}", ssl=_trusting(cert),
                 open_timeout=10) as ws:
        httpx.post(url + "/api/events", verify=_trusting(cert), headers={"X-API-Key": KEY},
                   json={"event_type": "start", "session_id": "live-1", "category": "codex"}).raise_for_status()
        for _ in range(20):
            message = json.loads(ws.recv(timeout=10))
            if "live-1" in json.dumps(message):
                return
    raise AssertionError("the event never reached the wss:// subscriber")


def test_tls_from_environment_and_config_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {"TELEMETRY_TLS_CERT": str(cert), "TELEMETRY_TLS_KEY": str(key)}
    with ServerProcess(tmp_path / "env.db", env=env, verify=_trusting(cert)) as server:
        assert server.url.startswith("https://")
    config = tmp_path / "telemetry.toml"
    config.write_text(f'[telemetry.api]\ntls_cert = "{cert}"\ntls_key = "{key}"\n', encoding="utf-8")
    with ServerProcess(tmp_path / "file.db", env={"TELEMETRY_CONFIG": str(config)}, verify=_trusting(cert)) as server:
        assert server.url.startswith("https://")
        answer = httpx.post(server.url + "/api/events", verify=_trusting(cert),
                            json={"event_type": "start", "session_id": "f1", "category": "codex"})
        assert answer.status_code == 200


def test_bad_pairs_are_errors_naming_the_option(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    result = refused_api(tmp_path, "--tls-cert", str(cert))
    assert result.returncode != 0
    assert "--tls-key: missing; --tls-cert was given" in result.stderr, result.stderr
    result = refused_api(tmp_path, "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert result.returncode != 0
    assert f"--tls-key: {other_key} is not the private key of the certificate {cert}" in result.stderr, \
        result.stderr
    result = refused_api(tmp_path, "--tls-cert", str(key), "--tls-key", str(key))
    assert result.returncode != 0 and "--tls-cert:" in result.stderr and "not a PEM certificate" in result.stderr
    result = refused_api(tmp_path, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(key))
    assert result.returncode != 0 and "--tls-cert: cannot read" in result.stderr, result.stderr
    config = tmp_path / "half.toml"
    config.write_text(f'[telemetry.api]\ntls_cert = "{other_cert}"\n', encoding="utf-8")
    result = refused_api(tmp_path, env={"TELEMETRY_CONFIG": str(config)})
    assert result.returncode != 0
    assert "api.tls_key: missing; api.tls_cert was given" in result.stderr, result.stderr


def test_start_api_server_serves_https_from_python(tmp_path: Path) -> None:
    from vibekit_telemetry.server import start_api_server
    from vibekit_telemetry.server.tls import load_tls_pair

    cert, key = self_signed(tmp_path)
    with Telemetry(db_path=str(tmp_path / "py.db")) as telemetry, \
            start_api_server(telemetry, port=0, tls=load_tls_pair(str(cert), str(key))) as server:
        assert server.url.startswith("https://127.0.0.1:")
        answer = httpx.post(server.url + "/api/events", verify=_trusting(cert),
                            json={"event_type": "start", "session_id": "py-1", "category": "claude"})
        assert answer.status_code == 200 and answer.json()["committed"] is True
        assert telemetry.get_session("py-1") is not None
