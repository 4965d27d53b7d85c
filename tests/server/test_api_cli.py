"""`telemetry api`: serve, ingest with curl-like requests, and SIGTERM/SIGINT that flush pending events."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_support import start_event, stream_event

from vibekit_telemetry import Telemetry

CLI_KEY = "cli-secret-0123456789"
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


def _start(db: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), "api", "--port", "0",
         "--log-level", "warning", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    output = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        output += line
        match = URL.search(line)
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        return process, url
                except httpx.TransportError:
                    time.sleep(0.05)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"server did not start:\n{output}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully_and_flushes_pending_events(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "served.db"
    process, url = _start(db)
    try:
        events = [start_event("cli1")] + [stream_event("cli1", f"chunk {i}") for i in range(99)]
        response = httpx.post(url + "/api/events?wait=false", json=events)  # still queued when signalled
        assert response.status_code == 202
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with Telemetry(db_path=str(db)) as telemetry:
        session = telemetry.get_session("cli1")
        assert session is not None and session.event_count == 100


def test_auth_flag_and_api_key(tmp_path: Path) -> None:
    process, url = _start(tmp_path / "auth.db", "--api-key", f"{CLI_KEY}:read+ingest", "--rate-limit", "strict")
    try:
        assert httpx.get(url + "/api/events").status_code == 401
        ok = httpx.get(url + "/api/events", headers={"X-API-Key": CLI_KEY})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit"] == "100"
        assert httpx.delete(url + "/api/events?category=x", headers={"X-API-Key": CLI_KEY}).status_code == 403
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_auth_without_keys_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"),
                             "api", "--auth"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "at least one API key" in result.stderr
