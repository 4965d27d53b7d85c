"""The payload whitelist as a parser: any JSON in, a whitelisted payload or a ValidationError out."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from usage_support import payload

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.usage import FIELDS, validate_payload
from vibekit_telemetry.usage.payload import from_event, payload_id, to_raw_event

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                      max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "email", "prompt", "x"]), json_values, max_size=12))
def test_any_input_is_whitelisted_or_refused_by_field(data: dict[str, Any]) -> None:
    merged = {**payload(), **data}
    try:
        clean = validate_payload(merged)
    except ValidationError as exc:
        assert exc.field.startswith("data.")
        return
    assert set(clean) <= set(FIELDS) and "email" not in clean and "prompt" not in clean


def test_round_trip_and_stable_ids() -> None:
    data = validate_payload(payload())
    raw = to_raw_event(data)
    assert raw["metadata"] == {"usage": data} and raw["event_id"] == payload_id(payload())
    assert payload_id(payload(duration=1.0)) != payload_id(payload(duration=2.0))

    class Event:
        metadata = raw["metadata"]

    assert from_event(Event()) == data  # type: ignore[arg-type]
