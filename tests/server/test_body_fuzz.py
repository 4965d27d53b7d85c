"""Hypothesis fuzzing of the ingest body parser: any bytes, any content type, only clean 4xx or a value.

Runs briefly (a few hundred examples per property) so it stays in every CI run; the schemathesis
fuzzing of the live server's OpenAPI document is in test_api_fuzz.py.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server.body import check_depth, parse_body
from vibekit_telemetry.server.errors import ApiError
from vibekit_telemetry.server.ingest import unpack

MAX_DEPTH = 32
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "application/x-ndjson",
                                 "application/ld+json", "", "text/plain", "application/octet-stream",
                                 "APPLICATION/JSON", "multipart/form-data; boundary=x"])
FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _parse_and_unpack(raw: bytes, content_type: str) -> None:
    try:
        document = parse_body(raw, content_type, MAX_DEPTH)
        items, single = unpack(document)
    except ApiError as exc:
        assert exc.status_code in (400, 413, 415), exc.status_code
        assert exc.details and all({"field", "message"} <= set(d) for d in exc.details)
        return
    except ValidationError:
        return
    assert isinstance(items, list) and items and isinstance(single, bool)


@FUZZ
@given(raw=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_arbitrary_bytes_never_crash_the_parser(raw: bytes, content_type: str) -> None:
    _parse_and_unpack(raw, content_type)


@FUZZ
@given(value=json_values, content_type=CONTENT_TYPES)
def test_json_documents_parse_or_get_a_clean_error(value: Any, content_type: str) -> None:
    raw = json.dumps(value).encode()
    _parse_and_unpack(raw, content_type)
    if content_type.lower().startswith("application/json") and raw.strip():
        assert parse_body(raw, content_type, 1000) == value


@FUZZ
@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_without_recursion(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = (opener * depth + "1" + closer * depth).encode()
    try:
        value = parse_body(raw, "application/json", MAX_DEPTH)
    except ApiError as exc:
        assert exc.status_code == 400 and "nested" in exc.details[0]["message"]
        assert depth > MAX_DEPTH
        return
    assert _depth(value) <= MAX_DEPTH
    check_depth(value, MAX_DEPTH)


@FUZZ
@given(lines=st.lists(json_values | st.text(max_size=30), max_size=8))
def test_ndjson_lines_name_the_bad_line(lines: list[Any]) -> None:
    raw = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    try:
        parse_body(raw, "application/x-ndjson", MAX_DEPTH)
    except ApiError as exc:
        assert exc.status_code == 400 and exc.details[0]["field"].startswith("line ")
