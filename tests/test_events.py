"""The event model: aliases, validation errors that name the field, the builder."""

from __future__ import annotations

import math

import pytest

from vibekit_telemetry import EventBuilder, TelemetryEvent, ValidationError
from vibekit_telemetry.events import (
    coerce_event,
    encode_json,
    event_from_mapping,
    truncate_fields,
    validate_event,
)


def test_camel_case_and_vibekit_names_map_to_fields() -> None:
    event = event_from_mapping({
        "sessionId": "s1", "eventType": "stream", "agentType": "claude", "mode": "code",
        "prompt": "Fix it", "streamData": "chunk", "sandboxId": "sb", "repoUrl": "https://x/y",
    })
    assert (event.session_id, event.event_type, event.category, event.action) == ("s1", "stream", "claude",
                                                                                  "code")
    assert (event.label, event.stream_data, event.sandbox_id, event.repo_url) == ("Fix it", "chunk", "sb",
                                                                                  "https://x/y")


def test_error_key_becomes_label_and_metadata() -> None:
    event = event_from_mapping({"sessionId": "s", "eventType": "error", "agentType": "a", "error": "rate limit"})
    assert event.label == "rate limit"
    assert event.metadata == {"error": "rate limit"}


@pytest.mark.parametrize(("data", "field"), [
    ({"event_type": "bogus", "category": "x"}, "event_type"),
    ({"event_type": "custom"}, "category"),
    ({"event_type": "custom", "category": ""}, "category"),
    ({"event_type": "custom", "category": "x", "value": math.nan}, "value"),
    ({"event_type": "custom", "category": "x", "value": math.inf}, "value"),
    ({"event_type": "custom", "category": "x", "value": "3"}, "value"),
    ({"event_type": "custom", "category": "x", "duration": -1}, "duration"),
    ({"event_type": "custom", "category": "x", "timestamp": 1_700_000_000}, "timestamp"),
    ({"event_type": "custom", "category": "x", "metadata": [1, 2]}, "metadata"),
    ({"event_type": "stream", "category": "x"}, "session_id"),
    ({"event_type": "custom", "category": "x", "colour": "red"}, "colour"),
])
def test_bad_input_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_event(coerce_event(data))
    assert info.value.field == field
    assert field in str(info.value)


def test_seconds_timestamp_message_says_seconds() -> None:
    with pytest.raises(ValidationError, match="looks like seconds"):
        validate_event(coerce_event({"event_type": "custom", "category": "x", "timestamp": 1_700_000_000}))


def test_unserialisable_metadata_names_the_key_path() -> None:
    with pytest.raises(ValidationError) as info:
        encode_json("metadata", {"ok": 1, "nested": {"bad": object()}})
    assert info.value.field == "metadata.nested.bad"
    with pytest.raises(ValidationError) as info:
        encode_json("metadata", {"score": math.nan})
    assert info.value.field == "metadata.score"


def test_truncation_flags_the_fields() -> None:
    event = TelemetryEvent("stream", "c", "s", stream_data="x" * 100, label="short")
    assert truncate_fields(event, 10) == ["stream_data"]
    assert event.stream_data == "x" * 10
    assert event.metadata == {"_truncated": ["stream_data"]}


def test_builder_builds_a_valid_event() -> None:
    event = (EventBuilder().with_session_id("session-123").with_category("claude")
             .with_action("code-generation").with_label("react-component").with_value(150)
             .with_metadata({"language": "typescript"}).with_metadata({"framework": "react"}).build())
    assert event.event_type == "custom"
    assert event.value == 150
    assert event.metadata == {"language": "typescript", "framework": "react"}


def test_builder_rejects_bad_values() -> None:
    with pytest.raises(ValidationError) as info:
        EventBuilder().with_category("c").with_value(math.nan).build()
    assert info.value.field == "value"


def test_to_dict_camel() -> None:
    event = TelemetryEvent("start", "claude", "s1", "code", "p", timestamp=1_700_000_000_000)
    camel = event.to_dict(camel=True)
    assert camel["sessionId"] == "s1" and camel["eventType"] == "start" and camel["streamData"] is None
    assert "metadata_json" not in event.to_dict()
