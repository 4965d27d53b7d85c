"""PII and secret detectors: one compiled pattern each, with a validator where a regex alone over-matches."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of sensitive text: a pattern, the tag that replaces it, an optional check of each match.

    `group` names the part of the match that is sensitive (a URL's password, an assignment's value);
    the rest of the match is kept so the text stays readable.
    """

    name: str
    pattern: re.Pattern[str]
    replacement: str
    check: Callable[[str], bool] | None = None
    group: int | str = 0
    # Cheap prefilters, so most detectors skip most text without running their regex: one of
    # `needles` must occur (in the lower-cased text when `ci`), and the text needs this many digits.
    needles: tuple[str, ...] = ()
    ci: bool = False
    min_digits: int = 0
    min_len: int = 0
    # A cheaper pattern every match of `pattern` contains (tests/privacy/test_detector_gates.py checks
    # it): `pattern` runs only when the gate is found. The built-in patterns start with a look-behind,
    # which makes the regex engine try every position; a gate starts with a literal or a character
    # class, which it skips to.
    gate: re.Pattern[str] | None = None


def luhn_ok(text: str) -> bool:
    """Return True when the digits of text pass the Luhn checksum (card numbers do, order numbers rarely)."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """Return True when text is an IBAN whose mod-97 check digits are right."""
    compact = re.sub(r"[\s-]", "", text).upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


def ssn_ok(text: str) -> bool:
    """Return True for a US SSN the SSA could issue (no 000/666/9xx area, 00 group or 0000 serial)."""
    area, group, serial = re.split(r"[- ]", text)
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def phone_ok(text: str) -> bool:
    """Return True when a phone-looking match has 10 to 15 digits (E.164), so short number runs stay."""
    return 10 <= sum(c.isdigit() for c in text) <= 15


def ipv4_ok(text: str) -> bool:
    """Return True for a dotted quad whose parts are 0-255, not bind-all or loopback."""
    parts = text.split(".")
    # 0.0.0.0 (bind-all) and 127.x (loopback) name no host or person: logs are full of them.
    return (len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts) and text != "0.0.0.0"
            and parts[0] != "127")


def ipv6_ok(text: str) -> bool:
    """Return True when text parses as an IPv6 address (the regex only finds candidates)."""
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return text.count(":") >= 2 and text != "::"


def shannon_entropy(text: str) -> float:
    """Return the bits per character of text's own symbol distribution."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def high_entropy_ok(text: str) -> bool:
    """A random-looking token: upper, lower and digits mixed, >= 4 bits/char (hex SHAs and UUIDs are not)."""
    return (any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
            and shannon_entropy(text) >= 4.0)


_NOT_SECRET_VALUES: Final = frozenset({"true", "false", "none", "null", "undefined", "required", "optional"})


def assigned_secret_ok(value: str) -> bool:
    """An assigned value worth hiding: not a number, a boolean, a placeholder or an already redacted tag."""
    return not (value.isdigit() or value.lower() in _NOT_SECRET_VALUES or value.startswith(("[REDACTED", "<", "${"))
                or set(value) <= {"*", "x", "X", "."})


_W = r"(?<![\w.+-])"  # a match starts at a word boundary that is not inside an address or a dotted name
_E = r"(?![\w-])"

# Order matters: specific secrets first (an Anthropic key is also a generic token), then the
# personal data, then the generic high-entropy catch-all last, over what is left.
BUILTIN: Final[tuple[Detector, ...]] = (
    Detector("private_key", re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,-]*"),
        "[REDACTED_PRIVATE_KEY]", needles=("-----BEGIN",)),
    Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "[REDACTED_JWT]",
        needles=("eyJ",)),
    Detector("anthropic_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), "[REDACTED_API_KEY]", needles=("sk-ant-",)),
    Detector("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), "[REDACTED_API_KEY]",
        needles=("sk-",)),
    Detector("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), "[REDACTED_API_KEY]",
        needles=("AKIA", "ASIA", "ABIA", "ACCA")),
    Detector("aws_secret_key", re.compile(
        r"(?i)(aws_?secret_?access_?key|aws_?secret)(\s*[:=]\s*[\"']?)([A-Za-z0-9/+]{40})\b"),
        "[REDACTED_API_KEY]", group=3, needles=("aws",), ci=True),
    Detector("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
             "[REDACTED_API_KEY]", needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    Detector("slack_token", re.compile(r"\bxox[abposre]-(?:[A-Za-z0-9]+-){1,4}[A-Za-z0-9]+"), "[REDACTED_API_KEY]",
        needles=("xox",)),
    Detector("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]+"), "[REDACTED_API_KEY]",
        needles=("hooks.slack.com",)),
    Detector("stripe_key", re.compile(r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), "[REDACTED_API_KEY]",
        needles=("_live_", "_test_")),
    Detector("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), "[REDACTED_API_KEY]", needles=("AIza",)),
    Detector("url_password", re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)(@)"),
             "[REDACTED_PASSWORD]", group=2, needles=("://",)),
    Detector("assigned_secret", re.compile(
        r"(?i)((?:password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|credential)s?[\"']?"
        r"\s*(?::|=|:=|=>)\s*)([\"']?)([^\s\"'`,;()\[\]{}<>]{6,})(?=\2)(?=[\"'\s,;)}\]]|$)"),
        "[REDACTED_PASSWORD]", check=assigned_secret_ok, group=3,
        needles=("pass", "pwd", "secret", "token", "key", "credential"), ci=True, gate=re.compile(r"[:=]")),
    Detector("email", re.compile(_W + r"(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
             "[REDACTED_EMAIL]", needles=("@",)),
    Detector("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), "[REDACTED_IBAN]",
             check=iban_ok, min_digits=8, gate=re.compile(r"[A-Z]{2}\d\d")),
    Detector("credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), "[REDACTED_CREDIT_CARD]",
             check=luhn_ok, min_digits=13, gate=re.compile(r"\d(?:[ -]?\d){12}")),
    Detector("ssn", re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), "[REDACTED_SSN]", check=ssn_ok,
             needles=("-",), min_digits=9, gate=re.compile(r"\d-\d\d-\d")),
    Detector("phone", re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"
        r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}|(?<![\d.])\d{3}[.-]\d{3}[.-]\d{4}"
        r"|(?<![\d.:-])0\d{1,4}[\s-]\d{3,4}[\s-]\d{3,4})(?![\d.]?\d)"),
        "[REDACTED_PHONE]", check=phone_ok, min_digits=10,
        gate=re.compile(r"\+\d|\(\d{3}\)|\d{3}[.-]\d{3}[.-]\d|0\d{1,4}[\s-]\d{3}")),
    Detector("ipv4", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]|\.\d)"), "[REDACTED_IP]", check=ipv4_ok,
             needles=(".",), min_digits=4, gate=re.compile(r"\d\.\d{1,3}\.\d")),
    Detector("ipv6", re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"), "[REDACTED_IP]",
             check=ipv6_ok, needles=(":",), gate=re.compile(r":[0-9A-Fa-f]{0,4}:")),
    Detector("high_entropy", re.compile(r"(?<![\w/+=-])[A-Za-z0-9_+/=-]{32,}(?![\w/+=-])"), "[REDACTED_SECRET]",
             check=high_entropy_ok, min_digits=1, min_len=32, gate=re.compile(r"[A-Za-z0-9_+/=-]{32}")),
)
BUILTIN_NAMES: Final = tuple(d.name for d in BUILTIN)
# Names a user may list in `security.pii.patterns` for a whole family of detectors.
FAMILIES: Final[dict[str, tuple[str, ...]]] = {
    "api_key": ("anthropic_key", "openai_key", "aws_access_key", "aws_secret_key", "github_token", "slack_token",
                "slack_webhook", "stripe_key", "google_api_key"),
    "secret": ("private_key", "jwt", "url_password", "assigned_secret", "high_entropy"),
    "password": ("url_password", "assigned_secret"),
    "ip": ("ipv4", "ipv6"),
    "ip_address": ("ipv4", "ipv6"),
    "card": ("credit_card",),
    "creditcard": ("credit_card",),
}


def select(names: list[str] | None) -> list[Detector]:
    """Return the built-in detectors named (or in the families named), in their built-in order; all when empty."""
    if not names:
        return list(BUILTIN)
    wanted: set[str] = set()
    for name in names:
        key = name.strip().lower().replace("-", "_")
        if key in FAMILIES:
            wanted.update(FAMILIES[key])
        elif key in BUILTIN_NAMES:
            wanted.add(key)
        else:
            from ..errors import ValidationError

            raise ValidationError("security.pii.patterns", "names among " + ", ".join([*BUILTIN_NAMES, *FAMILIES]),
                                  name)
    return [d for d in BUILTIN if d.name in wanted]
