"""PII and secret redaction: detectors (property tests), the labelled corpus, and the chain's redact step."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from _privacy_corpus import evaluate, table
from hypothesis import given, settings
from hypothesis import strategies as st

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.privacy.detectors import iban_ok, luhn_ok
from vibekit_telemetry.privacy.redactor import Redactor, build_rules
from vibekit_telemetry.processing.redact import MAX_HOLD, Redact, could_be_secret, split_tail

REDACTOR = Redactor(build_rules())


def _luhn_complete(body: str) -> str:
    """Append the check digit that makes body pass Luhn."""
    for check in string.digits:
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.digits, min_size=14, max_size=15))
def test_luhn_valid_card_numbers_are_redacted_in_any_spacing(body: str) -> None:
    card = _luhn_complete("4" + body)
    spaced = " ".join(card[i:i + 4] for i in range(0, len(card), 4))
    for shown in (card, spaced, spaced.replace(" ", "-")):
        out = REDACTOR.redact_text(f"pay with {shown} today")
        assert shown not in out and "[REDACTED_CREDIT_CARD]" in out


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.digits, min_size=15, max_size=15))
def test_numbers_failing_luhn_are_kept(body: str) -> None:
    number = "4" + body
    if luhn_ok(number):
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not luhn_ok(number)
    assert REDACTOR.redact_text(f"order {number} shipped") == f"order {number} shipped"


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9._]{0,15}[a-z0-9]@[a-z][a-z0-9-]{0,10}\.(com|org|io|co\.uk)", fullmatch=True))
def test_any_email_is_redacted(email: str) -> None:
    out = REDACTOR.redact_text(f"reply to {email}, thanks")
    assert email not in out and "[REDACTED_EMAIL]" in out


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits, min_size=40, max_size=60))
def test_provider_keys_are_redacted(tail: str) -> None:
    for key in (f"sk-ant-api03-{tail}", f"sk-proj-{tail}", f"ghp_{tail}", f"sk_live_{tail}"):
        out = REDACTOR.redact_text(f"key={key} ")
        assert tail not in out, key


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_redaction_never_raises_and_is_idempotent(text: str) -> None:
    once = REDACTOR.redact_text(text)
    assert REDACTOR.redact_text(once) == once


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.ascii_lowercase + " .,", max_size=200))
def test_plain_prose_is_unchanged(text: str) -> None:
    assert REDACTOR.redact_text(text) == text


def test_iban_check_digits() -> None:
    assert iban_ok("DE89 3704 0044 0532 0130 00")
    assert not iban_ok("DE88 3704 0044 0532 0130 00")


def test_corpus_precision_and_recall() -> None:
    scores = evaluate()
    print("\n" + table(scores))
    overall = scores["overall"]
    assert overall.labelled >= 40
    assert overall.recall >= 0.95, table(scores)
    assert overall.precision >= 0.9, table(scores)


def test_hash_mode_is_stable_and_salted() -> None:
    a = Redactor(build_rules(mode="hash", salt="s1"))
    b = Redactor(build_rules(mode="hash", salt="s2"))
    text = "mail ann@example.com"
    assert a.redact_text(text) == a.redact_text(text)
    assert a.redact_text(text).startswith("mail [REDACTED_EMAIL:")
    assert a.redact_text(text) != b.redact_text(text)
    assert a.redact_text("mail bob@example.com") != a.redact_text(text)


def test_field_rules_replace_values_at_any_depth_and_keep_token_counts() -> None:
    value = {"db_password": 1234, "apiKey": "x", "nested": [{"auth": {"client_secret": {"a": 1}}}],
             "max_tokens": 4096, "tokens_used": 10, "note": "mail a.b@example.com"}
    out = REDACTOR.redact_value(value)
    assert out["db_password"] == "[REDACTED]" and out["apiKey"] == "[REDACTED]"
    assert out["nested"][0]["auth"]["client_secret"] == "[REDACTED]"
    assert out["max_tokens"] == 4096 and out["tokens_used"] == 10
    assert out["note"] == "mail [REDACTED_EMAIL]"


def test_custom_detector_and_bad_custom_pattern() -> None:
    r = Redactor(build_rules(custom=[{"name": "ticket", "pattern": r"TICKET-\d+", "replacement": "[TICKET]"}],
                             patterns=["email"]))
    assert r.redact_text("see TICKET-42 from a@b.io and 4111111111111111") == \
        "see [TICKET] from [REDACTED_EMAIL] and 4111111111111111"
    with pytest.raises(ValidationError, match=r"security.pii.custom_detectors\[0\].pattern"):
        build_rules(custom=[{"name": "bad", "pattern": "("}])
    with pytest.raises(ValidationError, match=r"security\.pii\.patterns"):
        build_rules(patterns=["emial"])


def test_split_tail_holds_the_trailing_token() -> None:
    assert split_tail("my key is sk-ant-ap") == ("my key is ", "sk-ant-ap")
    assert split_tail("card 4111 1111") == ("card ", "4111 1111")
    assert split_tail("done. ") == ("done. ", "")
    assert split_tail("chunk é ✓") == ("chunk é ✓", "")  # symbols and non-ASCII text are never held


# The tail's definition, as a forward search over the last MAX_HOLD characters: split_tail finds the
# same tail by one anchored match on the reversed chunk, which must never differ from it.
_TAIL_SPEC = re.compile(r"(?:(?<![\w])[\d(+][\d ()+.-]*)?\S*\Z")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab1 2(+).-\n\t@:_é✓9", max_size=700))
def test_split_tail_holds_exactly_the_specified_tail(text: str) -> None:
    match = _TAIL_SPEC.search(text, max(0, len(text) - MAX_HOLD))
    assert match is not None
    tail = match.group() if could_be_secret(match.group()) else ""
    assert split_tail(text) == (text[:len(text) - len(tail)], tail)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=60))
def test_secret_split_across_chunks_is_redacted(cut1: int, cut2: int) -> None:
    text = "Here: sk-ant-api03-Q2w3E4r5T6y7U8i9O0pAsDfGhJkL and card 4111 1111 1111 1111, mail ann@example.com done"
    a, b = sorted((cut1, cut1 + cut2))
    step = Redact(build_rules())
    chunks = [text[:a], text[a:b], text[b:]]
    out = [step.process(TelemetryEvent("stream", "agent", session_id="s1", stream_data=c)).stream_data
           for c in chunks]
    end = step.process(TelemetryEvent("end", "agent", session_id="s1"))
    joined = "".join(o or "" for o in out) + (end.stream_data or "")
    assert joined == REDACTOR.redact_text(text)
    for piece in ("Q2w3E4r5", "4111", "ann@"):
        assert all(piece not in (o or "") for o in out)


def test_prompt_is_stored_redacted_through_telemetry(tmp_path: Path) -> None:
    prompt = "Email ann@example.com, card 4111 1111 1111 1111, key sk-proj-Xk3Lm9Qp2Rt7Vw1Yz4Ab6Cd8Ef0Gh2Ij4"
    t = Telemetry(db_path=str(tmp_path / "t.db"), security={"pii": {"enabled": True}})
    try:
        sid = t.track_start("claude", "code", prompt, metadata={"password": "hunter2", "user": "ann@example.com"})
        t.track_stream(sid, "reply to ann@example.com")
        t.track_end(sid)
        t.flush()
        events = t.query(session_id=sid)
    finally:
        t.shutdown()
    start = events[0]
    assert start.label == "Email [REDACTED_EMAIL], card [REDACTED_CREDIT_CARD], key [REDACTED_API_KEY]"
    assert start.metadata == {"password": "[REDACTED]", "user": "[REDACTED_EMAIL]"}
    assert "ann@example.com" not in (tmp_path / "t.db").read_bytes().decode("latin-1")
    text = "".join(e.stream_data or "" for e in events)
    assert text == "reply to [REDACTED_EMAIL]"


def test_redaction_off_by_default_in_the_sdk(tmp_path: Path) -> None:
    t = Telemetry(db_path=str(tmp_path / "t.db"))
    try:
        assert not t._runtime.chain.get("redact").enabled  # type: ignore[union-attr]
    finally:
        t.shutdown()


def test_data_minimisation_drops_fields(tmp_path: Path) -> None:
    t = Telemetry(db_path=str(tmp_path / "t.db"),
                  security={"data_minimization": {"exclude_fields": ["hostname"]}})
    try:
        sid = t.track_start("claude", "code", "hi", metadata={"hostname": "box", "model": "x"})
        t.flush()
        (event,) = t.query(session_id=sid)
    finally:
        t.shutdown()
    assert event.metadata == {"model": "x"}
