"""Python values people put in metadata (datetimes, UUIDs, sets, dataclasses ...) are stored as JSON values."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from vibekit_telemetry import Telemetry, ValidationError
from vibekit_telemetry.jsonable import jsonable

MakeTelemetry = Callable[..., Telemetry]

WHEN = datetime.datetime(2026, 12, 7, 9, 30, 15, 250000, tzinfo=datetime.UTC)
ID = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


class Tier(enum.Enum):
    PRO = "pro"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Usage:
    input_tokens: int
    at: datetime.datetime


class Tool(BaseModel):
    name: str
    called_at: datetime.datetime


CASES: list[tuple[str, Any, Any]] = [
    ("datetime", WHEN, "2026-12-07T09:30:15.250000+00:00"),
    ("date", WHEN.date(), "2026-12-07"),
    ("time", datetime.time(9, 30), "09:30:00"),
    ("uuid", ID, "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("decimal", decimal.Decimal("0.0125"), 0.0125),
    ("enum", Tier.PRO, "pro"),
    ("int enum", Level.HIGH, 3),
    ("set", {"b", "a", "c"}, ["a", "b", "c"]),
    ("frozenset", frozenset({3, 1, 2}), [1, 2, 3]),
    ("bytes", "héllo".encode(), "héllo"),
    ("undecodable bytes", b"ok\xff", "ok\ufffd"),
    ("bytearray", bytearray(b"abc"), "abc"),
    ("path", pathlib.PurePosixPath("/srv/agent/run.log"), "/srv/agent/run.log"),
    ("dataclass", Usage(57, WHEN), {"input_tokens": 57, "at": "2026-12-07T09:30:15.250000+00:00"}),
    ("pydantic model", Tool(name="grep", called_at=WHEN), {"name": "grep", "called_at": "2026-12-07T09:30:15.250000Z"}),
    ("tuple of datetimes", (WHEN.date(), WHEN.date()), ["2026-12-07", "2026-12-07"]),
    ("nested", {"runs": [{"at": WHEN.date(), "ok": True}]}, {"runs": [{"at": "2026-12-07", "ok": True}]}),
]


@pytest.mark.parametrize(("name", "value", "stored"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("strict", [False, True], ids=["default", "raise_on_error"])
def test_a_known_python_value_is_stored_as_json(make_telemetry: MakeTelemetry, name: str, value: Any,
                                                stored: Any, strict: bool) -> None:
    telemetry = make_telemetry(raise_on_error=strict)
    sid = telemetry.track_start("claude", "code", "p", metadata={"v": value, "n": 1})
    telemetry.track({"event_type": "custom", "category": "claude", "session_id": sid, "context": {"v": value}})
    assert telemetry.flush(10)
    start, custom = telemetry.query(session_id=sid)
    assert start.metadata == {"v": stored, "n": 1}
    assert custom.context == {"v": stored}


def test_numpy_values_are_stored_as_numbers_and_lists(make_telemetry: MakeTelemetry) -> None:
    np = pytest.importorskip("numpy", reason="numpy is not installed")
    telemetry = make_telemetry(raise_on_error=True)
    sid = telemetry.track_start("claude", "code", "p", metadata={
        "tokens": np.int64(57), "score": np.float32(0.5), "ok": np.bool_(True), "grid": np.arange(4).reshape(2, 2)})
    assert telemetry.flush(10)
    (start,) = telemetry.query(session_id=sid)
    assert start.metadata == {"tokens": 57, "score": 0.5, "ok": True, "grid": [[0, 1], [2, 3]]}


def test_the_text_they_become_is_redacted(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(security={"pii": {"enabled": True}})
    sid = telemetry.track_start("claude", "code", "p", metadata={
        "log": pathlib.PurePosixPath("/home/ann.lee@example.org/run.log"),
        "raw": b"card 4111 1111 1111 1111",
        "to": {"ann.lee@example.org"}})
    assert telemetry.flush(10)
    (start,) = telemetry.query(session_id=sid)
    assert start.metadata == {"log": "/home/[REDACTED_EMAIL]/run.log", "raw": "card [REDACTED_CREDIT_CARD]",
                              "to": ["[REDACTED_EMAIL]"]}


def test_the_callers_values_are_left_as_they_were(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    inner = {"at": WHEN, "tags": {"x"}}
    meta = {"inner": inner, "list": [WHEN]}
    telemetry.track_start("claude", "code", "p", metadata=meta)
    assert telemetry.flush(10)
    assert meta == {"inner": {"at": WHEN, "tags": {"x"}}, "list": [WHEN]} and meta["inner"] is inner


def test_a_value_met_twice_is_converted_in_both_places_and_a_cycle_is_still_refused(
        make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(raise_on_error=True)
    shared = [WHEN.date()]
    sid = telemetry.track_start("claude", "code", "p", metadata={"a": shared, "b": shared})
    assert telemetry.flush(10)
    assert telemetry.query(session_id=sid)[0].metadata == {"a": ["2026-12-07"], "b": ["2026-12-07"]}
    cyclic: dict[str, Any] = {"at": WHEN}
    cyclic["self"] = cyclic
    with pytest.raises(ValidationError) as info:
        telemetry.track_start("claude", "code", "p", metadata=cyclic)
    assert info.value.field.startswith("metadata.self")


@pytest.mark.parametrize("value", [object(), lambda: 1, decimal.Decimal("NaN"), Tier],
                         ids=["object", "function", "decimal NaN", "enum class"])
def test_anything_else_is_still_refused_naming_its_path(make_telemetry: MakeTelemetry, value: Any) -> None:
    # str() of an arbitrary object could be huge or hold what redaction cannot recognise: not guessed.
    telemetry = make_telemetry(raise_on_error=True)
    with pytest.raises(ValidationError) as info:
        telemetry.track_start("claude", "code", "p", metadata={"ok": [1, {"bad": value}]})
    assert info.value.field == "metadata.ok[1].bad"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=30)


@given(st.dictionaries(st.text(), JSON))
def test_plain_json_comes_back_as_the_same_object(value: dict[str, Any]) -> None:
    # The usual case costs a check, never a copy.
    assert jsonable(value) is value
