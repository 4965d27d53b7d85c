"""Alert webhooks against real HTTP receivers on loopback: one that answers, one that fails, one that is down."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vibekit_telemetry.analytics.alerts import Alert, AlertManager, WebhookChannel


class _Receiver(ThreadingHTTPServer):
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answered in order, the last one repeated
        self.bodies: list[dict[str, Any]] = []
        self.headers_seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.headers_seen.append(self.headers.get("Content-Type", ""))
        status = self.server.statuses.pop(0) if len(self.server.statuses) > 1 else self.server.statuses[0]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[_Receiver]:
    server = _Receiver(list(getattr(request, "param", [200])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: _Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def _alert() -> Alert:
    return Alert("threshold:error_rate", "threshold", "error_rate", "critical", "error_rate is 12", 12.0, 5.0)


def test_alert_posted_as_json(receiver: _Receiver) -> None:
    manager = AlertManager(log=False)
    hook = WebhookChannel(_url(receiver), timeout_s=5, retries=0)
    manager.webhooks.append(hook)
    manager.fire(_alert(), cooldown_s=0)
    assert manager.wait_deliveries(10)
    assert hook.delivered == 1 and hook.failed == 0
    (body,) = receiver.bodies
    assert (body["metric"], body["severity"], body["value"], body["threshold"]) == ("error_rate", "critical", 12.0, 5.0)
    assert receiver.headers_seen == ["application/json"]


@pytest.mark.parametrize("receiver", [[503, 503, 200]], indirect=True)
def test_server_errors_are_retried_until_delivered(receiver: _Receiver) -> None:
    hook = WebhookChannel(_url(receiver), timeout_s=5, retries=3, backoff_s=0.01)
    assert hook.send(_alert()) is True
    assert len(receiver.bodies) == 3 and hook.delivered == 1


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_refused_body_is_not_retried(receiver: _Receiver) -> None:
    hook = WebhookChannel(_url(receiver), timeout_s=5, retries=3, backoff_s=0.01)
    assert hook.send(_alert()) is False
    assert len(receiver.bodies) == 1 and hook.failed == 1 and hook.last_error == "HTTP 400"


def test_a_receiver_that_is_down_fails_after_retries_without_blocking_the_caller() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = AlertManager(log=False)
    got: list[Alert] = []
    manager.callbacks.append(got.append)
    hook = WebhookChannel(f"http://127.0.0.1:{port}/hook", timeout_s=1, retries=2, backoff_s=0.01)
    manager.webhooks.append(hook)
    manager.fire(_alert(), cooldown_s=0)
    assert len(got) == 1  # the other channels were served at once; delivery runs on its own thread
    assert manager.wait_deliveries(10)
    assert hook.failed == 1 and hook.delivered == 0
    assert hook.last_error is not None and "Connection refused" in hook.last_error


def test_webhook_from_config_gets_the_scheduled_alerts(receiver: _Receiver, make_telemetry: Any) -> None:
    t = make_telemetry(analytics={"webhooks": [{"url": _url(receiver), "retries": 0}],
                                  "thresholds": [{"metric": "throughput", "threshold": 1, "direction": "below",
                                                  "severity": "warning", "window": "5m"}]})
    t.track({"event_type": "custom", "category": "claude"})
    assert t.flush()
    t.analytics.evaluate()  # one event in 5 minutes: 0.2 per minute, below 1
    assert t.analytics.alerts.wait_deliveries(10)
    sent = [(b["kind"], b["metric"], b["severity"]) for b in receiver.bodies]
    assert sent == [("threshold", "throughput", "warning")]
