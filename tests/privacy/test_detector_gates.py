"""Each built-in detector's gate is found in every match of its pattern, so gating never hides a secret.

A gate is a cheaper pattern checked first (privacy/detectors.py): the detector's own pattern runs only
when the gate is found. That is only safe if every text the pattern matches contains the gate. Texts
here are built around samples of each pattern's core (hypothesis's from_regex, without the
look-arounds it cannot generate), inside random context, and for every match the pattern finds the
gate must be found within the matched text itself.
"""

from __future__ import annotations

import re

import pytest
from _privacy_corpus import load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vibekit_telemetry.privacy.detectors import BUILTIN, Detector
from vibekit_telemetry.privacy.redactor import Redactor, build_rules

# What each gated pattern matches, without the look-arounds and word boundaries around it.
CORES = {
    "iban": r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
    "credit_card": r"\d(?:[ -]?\d){12,18}",
    "ssn": r"\d{3}-\d{2}-\d{4}",
    "phone": (r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"
              r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}|0\d{1,4}[\s-]\d{3,4}[\s-]\d{3,4}"),
    "ipv4": r"(?:\d{1,3}\.){3}\d{1,3}",
    "ipv6": r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}",
    "high_entropy": r"[A-Za-z0-9_+/=-]{32,48}",
    "assigned_secret": (r"(?i:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|credential)s?"
                        r"[\"']?\s*(?::|=|:=|=>)\s*[\"']?[A-Za-z0-9!#$%&*+./:=?@^_|~-]{6,20}"),
}
GATED = {d.name: d for d in BUILTIN if d.gate is not None}
CONTEXT = st.text(alphabet="0123456789abcdefABCDEFXYZ :.-+()/=_@'\"\n\t", max_size=24)


def test_every_gated_detector_has_a_core_here() -> None:
    assert set(GATED) == set(CORES)


def _check(detector: Detector, text: str) -> None:
    assert detector.gate is not None
    for match in detector.pattern.finditer(text):
        assert detector.gate.search(match.group(0)), (detector.name, text, match.group(0))


@pytest.mark.parametrize("name", sorted(CORES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_gate_is_in_every_match(name: str, data: st.DataObject) -> None:
    detector = GATED[name]
    core = data.draw(st.from_regex(re.compile(CORES[name]), fullmatch=True))
    text = data.draw(CONTEXT) + core + data.draw(CONTEXT)
    _check(detector, text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEFXYZkKpst :.-+()/=_@'\"\n", max_size=80))
def test_the_gate_is_in_every_match_of_random_text(text: str) -> None:
    for detector in GATED.values():
        _check(detector, text)


def test_the_labelled_corpus_is_redacted_the_same_with_and_without_gates() -> None:
    corpus = [example.text for example in load()]
    gated = Redactor(build_rules())
    ungated_rules = build_rules()
    ungated_rules.detectors = [Detector(d.name, d.pattern, d.replacement, d.check, d.group, d.needles, d.ci,
                                        d.min_digits, d.min_len) for d in ungated_rules.detectors]
    ungated = Redactor(ungated_rules)
    assert any(d.gate is not None for d in gated.rules.detectors)
    assert all(d.gate is None for d in ungated.rules.detectors)
    changed = 0
    for text in corpus:
        assert gated.redact_text(text) == ungated.redact_text(text), text
        changed += gated.redact_text(text) != text
    assert changed >= 40  # the corpus is mostly sensitive text: the comparison is not between no-ops
