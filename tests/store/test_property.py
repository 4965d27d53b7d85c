"""Property: any batch of valid events comes back out unchanged, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _store_helpers import T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.query import QueryFilter

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), _text,
                         st.floats(allow_nan=False, allow_infinity=False, width=32))
_meta = st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8), _json_scalar, max_size=4))


@st.composite
def _events(draw: st.DrawFn) -> list[TelemetryEvent]:
    out: list[TelemetryEvent] = []
    for i in range(draw(st.integers(1, 15))):
        kind = draw(st.sampled_from(["start", "custom", "stream", "error"]))
        out.append(TelemetryEvent(
            kind, draw(st.sampled_from(["claude", "codex", "gemini"])),
            session_id=draw(st.sampled_from([None, "a", "b"])) if kind in ("start", "custom") else "a",
            action=draw(st.one_of(st.none(), _text)), label=draw(st.one_of(st.none(), _text)),
            value=draw(st.one_of(st.none(), st.floats(-1e9, 1e9))),
            stream_data=draw(st.one_of(st.none(), _text)), timestamp=T0 + draw(st.integers(0, 10**9)),
            duration=draw(st.one_of(st.none(), st.floats(0, 1e7))),
            metadata=draw(_meta), context=draw(_meta), service_name="svc", event_id=f"e{i:03d}"))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=_events())
def test_events_in_equal_events_out(make_store: Callable[..., Any], batch: list[TelemetryEvent]) -> None:
    store = make_store()
    store.clean()  # the fixture's database is shared across examples
    result = store.store_batch(batch)
    assert result.stored == len(batch) and not result.rejected
    got = {e.event_id: e for e in store.query(QueryFilter(limit=100))}
    assert set(got) == {e.event_id for e in batch}
    for want in batch:
        assert got[want.event_id] == want
