"""The webhook exporter against a real HTTP receiver on loopback, and its configuration."""

from __future__ import annotations

from typing import Any

import pytest
from _exporter_helpers import Receiver, event, free_port

from vibekit_telemetry import registry
from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.exporters import PoisonBatchError, WebhookExporter
from vibekit_telemetry.exporters.webhook import WebhookError


def test_a_batch_arrives_as_the_http_api_returns_events(receiver: Receiver) -> None:
    hook = WebhookExporter(receiver.url, headers={"Authorization": "Bearer s3cret"})
    batch = [event(text="one"), event(text="two")]
    hook.export(batch)
    assert receiver.received() == [e.event_id for e in batch]
    body = receiver.bodies[0]["events"][0]
    assert body == batch[0].to_dict()
    assert body["label"] == "one" and body["metadata"] == {"n": "one"}
    assert receiver.headers[0]["Authorization"] == "Bearer s3cret"
    assert receiver.headers[0]["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
def test_a_refused_batch_is_poison(receiver: Receiver, status: int) -> None:
    receiver.status = status
    with pytest.raises(PoisonBatchError, match=str(status)):
        WebhookExporter(receiver.url).export([event()])


@pytest.mark.parametrize("status", [408, 429, 500, 503, 302])
def test_a_passing_failure_is_retried(receiver: Receiver, status: int) -> None:
    receiver.status = status
    with pytest.raises(WebhookError, match=str(status)):
        WebhookExporter(receiver.url).export([event()])
    assert receiver.received() == []


def test_a_closed_port_is_retried() -> None:
    with pytest.raises(WebhookError, match="refused"):
        WebhookExporter(f"http://127.0.0.1:{free_port()}/hook", timeout_s=2).export([event()])


def test_the_default_name_keys_the_cursor_by_destination_without_secrets() -> None:
    hook = WebhookExporter("https://user:pw@example.com:8443/in?token=abc")
    assert hook.name == "webhook:https://example.com:8443/in"
    assert WebhookExporter("http://example.com/x", name="audit").name == "audit"


@pytest.mark.parametrize(("options", "field"), [
    ({}, "storage[1].options.url"),
    ({"url": "ftp://example.com"}, "storage[1].options.url"),
    ({"url": "http://example.com", "timeout_s": 0}, "storage[1].options.timeout_s"),
    ({"url": "http://example.com", "batch_size": "big"}, "storage[1].options.batch_size"),
    ({"url": "http://example.com", "headers": {"X-N": 1}}, "storage[1].options.headers"),
    ({"url": "http://example.com", "colour": "red"}, "storage[1].options.colour"),
])
def test_bad_webhook_options_name_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        registry.build("webhook", options, field="storage[1]")
    assert info.value.field == field


def test_an_unknown_type_names_the_entry_and_lists_the_known_types() -> None:
    with pytest.raises(ValidationError) as info:
        registry.build("kafka", {}, field="storage[2]")
    assert info.value.field == "storage[2].type"
    assert "sqlite" in str(info.value) and "webhook" in str(info.value) and "kafka" in str(info.value)
    with pytest.raises(ValidationError) as info:
        load_config(storage=[{"type": "sqlite"}, {"type": "kafka"}])
    assert info.value.field == "storage.1.type" and "webhook" in str(info.value)


def test_config_accepts_webhook_entries_and_stores_skip_them(tmp_path: Any) -> None:
    from vibekit_telemetry.store.factory import build_providers

    config = load_config(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
                                  {"type": "webhook", "options": {"url": "http://127.0.0.1:9/hook"}}])
    providers = build_providers(config)
    assert [p.name for p in providers] == ["sqlite"]
    assert registry.kind_of("webhook") == "exporter" and registry.kind_of("postgres") == "store"
