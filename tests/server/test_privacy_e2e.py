"""Issue 12's acceptance: a prompt with an email, a card number and an API key, sent to the API server,
is stored, streamed, exported and read back only as redacted text; encrypted fields are not in the file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Serve, SSEReader, start_event

from vibekit_telemetry import Telemetry

pytest.importorskip("cryptography", reason="encryption at rest needs the crypto extra")

PROMPT = "Bill ann.lee@example.org on 4111 1111 1111 1111 using sk-proj-Xk3Lm9Qp2Rt7Vw1Yz4Ab6Cd8Ef0Gh2Ij4"
REDACTED = "Bill [REDACTED_EMAIL] on [REDACTED_CREDIT_CARD] using [REDACTED_API_KEY]"
PLAIN = ("ann.lee", "4111", "Xk3Lm9Qp")


class Hook:
    """A webhook receiver on loopback that keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_prompt_is_redacted_everywhere_and_encrypted_at_rest(tmp_path: Path, serve: Serve) -> None:
    hook = Hook()
    db = tmp_path / "server.db"
    telemetry = Telemetry(db_path=str(db), stream_flush_interval_ms=5,
                          storage=[{"type": "sqlite", "options": {"path": str(db)}},
                                   {"type": "webhook", "options": {"url": hook.url, "start_at": "beginning"}}],
                          security={"encryption": {"enabled": True, "key": "12" * 32}})
    try:
        server = serve(telemetry)  # no pii setting: the server redacts by default
        reader = SSEReader(server.url + "/api/stream")
        try:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                response = http.post("/api/events", json=start_event("s-pii", prompt=PROMPT))
                assert response.status_code in (200, 201, 202), response.text
                streamed = reader.wait_for(1)[0][1]
                stored = http.get("/api/events", params={"session_id": "s-pii"}).json()
                exported = http.get("/api/events/export", params={"session_id": "s-pii"}).text
        finally:
            reader.close()
        deadline = time.monotonic() + 20
        while not hook.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        telemetry.shutdown()
        hook.server.shutdown()
    assert streamed["event"]["label"] == REDACTED
    assert json.dumps(stored).count(REDACTED) == 1 and not any(p in json.dumps(stored) for p in PLAIN)
    assert REDACTED in exported and not any(p in exported for p in PLAIN)
    assert hook.bodies and hook.bodies[0]["events"][0]["label"] == REDACTED
    with sqlite3.connect(db) as conn:
        (label,) = conn.execute("SELECT label FROM events WHERE session_id = 's-pii'").fetchone()
    assert label.startswith("vkenc1:") and "REDACTED" not in label
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"REDACTED_EMAIL" not in raw and b"ann.lee" not in raw
