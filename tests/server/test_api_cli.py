"""`telemetry api`: serve, ingest with curl-like requests, and SIGTERM/SIGINT that flush pending events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_support import start_event, stream_event

from servers import ServerProcess, child_pids, wait_gone
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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_whole_group_stops_server_and_writer_process_with_nothing_lost(
        tmp_path: Path, sig: signal.Signals) -> None:
    # Ctrl-C in a terminal and `systemctl stop` signal every process of the group, the writer process too:
    # it must not die with a batch in hand, but finish it and go when the server closes its socket.
    db = tmp_path / "served.db"
    server = ServerProcess(db, "--writer-process", log_level="warning", own_group=True)
    with server:
        writers = child_pids(server.process.pid)
        assert len(writers) == 1
        for n in range(20):
            events = [start_event(f"g{n}")] + [stream_event(f"g{n}", f"chunk {i}") for i in range(99)]
            assert httpx.post(server.url + "/api/events?wait=false", json=events).status_code == 202
        os.killpg(server.process.pid, sig)
        assert server.process.wait(timeout=30) == 0, server.output()
    with Telemetry(db_path=str(db)) as telemetry:
        counts = [telemetry.get_session(f"g{n}") for n in range(20)]
    assert [s.event_count if s else 0 for s in counts] == [100] * 20
    assert wait_gone(writers[0], 10), "the writer process outlived the server"


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
