"""`telemetry api`: serve, ingest with curl-like requests, and SIGTERM/SIGINT that flush pending events."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_support import start_event, stream_event

from servers import ServerProcess
from vibekit_telemetry import Telemetry

CLI_KEY = "cli-secret-0123456789"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully_and_flushes_pending_events(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "served.db"
    with ServerProcess(db, log_level="warning") as server:
        events = [start_event("cli1")] + [stream_event("cli1", f"chunk {i}") for i in range(99)]
        response = httpx.post(server.url + "/api/events?wait=false", json=events)  # still queued when signalled
        assert response.status_code == 202
        assert server.send_signal(sig) == 0
    with Telemetry(db_path=str(db)) as telemetry:
        session = telemetry.get_session("cli1")
        assert session is not None and session.event_count == 100


def test_auth_flag_and_api_key(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "auth.db", "--api-key", f"{CLI_KEY}:read+ingest", "--rate-limit", "strict",
                       log_level="warning") as server:
        url = server.url
        assert httpx.get(url + "/api/events").status_code == 401
        ok = httpx.get(url + "/api/events", headers={"X-API-Key": CLI_KEY})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit"] == "100"
        assert httpx.delete(url + "/api/events?category=x", headers={"X-API-Key": CLI_KEY}).status_code == 403


def test_auth_without_keys_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"),
                             "api", "--auth"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "at least one API key" in result.stderr
