"""`telemetry export --format otlp --endpoint URL` sends the stored sessions to a collector as traces."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import start_api_server


def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


def test_export_otlp_to_an_endpoint_sends_every_session(make_telemetry: Callable[..., Telemetry],
                                                        tmp_path: Path) -> None:
    source = make_telemetry("source.db")
    sids = []
    for n in range(3):
        sid = source.track_start("claude", "code", f"task {n}")
        source.track_stream(sid, "hello")
        source.track_end(sid, "completed")
        sids.append(sid)
    assert source.flush()
    source.shutdown()
    collector = make_telemetry("collector.db", security={"pii": {"enabled": False}})
    server = start_api_server(collector, port=0)  # our receiver is a real OTLP/HTTP endpoint
    try:
        sent = _cli(tmp_path / "source.db", "export", "--format", "otlp", "--endpoint", server.url)
        assert sent.returncode == 0, sent.stderr + sent.stdout
        assert "Sent 9 events (3 sessions as traces)" in sent.stdout
    finally:
        server.stop()
    # Spans our encoder wrote come back as the very events: same sessions, same ids.
    assert {e.session_id for e in collector.query(limit=1000)} == set(sids)
    assert len(collector.query(limit=1000)) == 9


def test_export_endpoint_needs_otlp_and_an_http_url(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    Telemetry(db_path=str(db)).shutdown()
    wrong_format = _cli(db, "export", "--format", "json", "--endpoint", "http://127.0.0.1:9")
    assert wrong_format.returncode == 2 and "--endpoint" in wrong_format.stderr
    no_output = _cli(db, "export", "--format", "json")
    assert no_output.returncode == 2 and "--output" in no_output.stderr
    bad_url = _cli(db, "export", "--format", "otlp", "--endpoint", "ftp://x")
    assert bad_url.returncode == 2 and "http://" in bad_url.stderr
