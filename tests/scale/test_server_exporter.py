"""The server exporter against real loopback servers: auth failures wait, refusals cost one event, bad options."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.exporters import ExporterSet
from vibekit_telemetry.exporters.manager import DeliveryOptions
from vibekit_telemetry.exporters.server import ServerExporter, build_server
from vibekit_telemetry.store.factory import build_providers

FAST = DeliveryOptions(retry_base_s=0.02, retry_max_s=0.1, failure_threshold=100, start_at="beginning")


def _events(n: int, prefix: str = "e") -> list[TelemetryEvent]:
    return [TelemetryEvent("custom", "claude", label=f"step {i}", timestamp=now_ms(), event_id=f"{prefix}-{i}")
            for i in range(n)]


class Fake(BaseHTTPRequestHandler):
    """A receiver that refuses (400) any batch holding event id `bad` and commits the rest."""

    received: ClassVar[dict[str, dict[str, Any]]] = {}

    def do_POST(self) -> None:
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"]
        if any(e["event_id"] == "bad" for e in batch):
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"detail": "events[0].label: too long"}')
            return
        for event in batch:
            type(self).received[event["event_id"]] = event
        body = json.dumps({"accepted": len(batch), "committed": True}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_url() -> Iterator[str]:
    Fake.received = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_batch_costs_only_the_refused_event(tmp_path: Path, fake_url: str) -> None:
    [store] = build_providers(load_config(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "h.db")}}]))
    store.initialize()
    exporter = ServerExporter(fake_url, batch_size=10)
    exporters = ExporterSet(store)
    exporters.add(exporter, FAST)
    exporters.start()
    events = _events(5)
    events.insert(2, TelemetryEvent("custom", "claude", label="x", timestamp=now_ms(), event_id="bad"))
    store.store_batch(events)
    exporters.notify()
    assert exporters.shutdown(timeout=10)
    assert sorted(Fake.received) == [f"e-{i}" for i in range(5)]
    [status] = exporters.status()
    assert exporter.refused == 1 and "bad" in status["last_error"]
    store.shutdown()


def test_a_wrong_key_holds_the_backlog_until_the_key_is_fixed(tmp_path: Path) -> None:
    central = Telemetry(db_path=str(tmp_path / "central.db"))
    server = central.start_api_server(port=0, api_key="right-key-0123456789:ingest")
    try:
        [store] = build_providers(load_config(storage=[{"type": "sqlite",
                                                        "options": {"path": str(tmp_path / "h.db")}}]))
        store.initialize()
        store.store_batch(_events(3))
        wrong = ExporterSet(store)
        wrong.add(ServerExporter(server.url, api_key="wrong-key-0123456789", name="central"), FAST)
        wrong.start()
        time.sleep(0.3)  # several attempts, all answered 401
        assert not wrong.shutdown(timeout=0.2)             # not delivered, and not skipped either
        assert store.load_cursor("central") in (None, 0)
        right = ExporterSet(store)
        right.add(ServerExporter(server.url, api_key="right-key-0123456789", name="central"), FAST)
        right.start()
        assert right.shutdown(timeout=10)
        assert sorted(e.event_id for e in central.query()) == ["e-0", "e-1", "e-2"]
        store.shutdown()
    finally:
        server.stop()
        central.shutdown()


def test_environment_variables_add_a_server_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_SERVER_URL", "https://telemetry.internal:8443")
    monkeypatch.setenv("TELEMETRY_API_KEY", "k-0123456789")
    entries = load_config(db_path="x.db").storage_entries()
    assert [(e.type, e.options) for e in entries][1] == (
        "server", {"url": "https://telemetry.internal:8443", "api_key": "k-0123456789"})
    exporter = build_server(entries[1].options, "storage[1].options")
    assert exporter.url == "https://telemetry.internal:8443/api/events"
    assert exporter.name == "server:https://telemetry.internal:8443/api/events"
    assert "k-0123456789" not in repr(load_config(db_path="x.db"))


@pytest.mark.parametrize(("options", "field"), [
    ({}, "storage[1].options.url"),
    ({"url": "ftp://x"}, "storage[1].options.url"),
    ({"url": "http://x", "api_key": ""}, "storage[1].options.api_key"),
    ({"url": "http://x", "batch_size": 0}, "storage[1].options.batch_size"),
    ({"url": "http://x", "timeout_s": -1}, "storage[1].options.timeout_s"),
    ({"url": "http://x", "token": "k"}, "storage[1].options.token"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExporterSet.from_config(load_config(storage=[{"type": "memory"}, {"type": "server", "options": options}]),
                                None)
    assert info.value.field == field
