"""Redactor: replace what the detectors find in text, and whole values of sensitive field names, at any depth."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import ValidationError
from .detectors import Detector, select

# Metadata and context keys whose value is replaced whatever it is (seed 001 `redaction.fields`).
DEFAULT_FIELDS: Final = ("password", "passwd", "pwd", "token", "secret", "api_key", "apikey", "access_token",
                         "refresh_token", "authorization", "private_key", "client_secret", "credentials", "cookie")
FIELD_REPLACEMENT: Final = "[REDACTED]"
_DROP_DIGITS: Final = str.maketrans("", "", "0123456789")
# Deeper structures than this are replaced whole: no recursion limit can be hit, nothing leaks past it.
MAX_DEPTH: Final = 64


def _norm_key(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


@dataclass(slots=True)
class CustomDetector:
    """A user's detector: `{"name": …, "pattern": …, "replacement": …}` (replacement defaults to [REDACTED_NAME])."""

    name: str
    pattern: str
    replacement: str | None = None


@dataclass
class RedactionRules:
    """What to redact and how: the detectors, the field names, replace or hash."""

    detectors: list[Detector]
    fields: tuple[str, ...] = DEFAULT_FIELDS
    mode: Literal["replace", "hash"] = "replace"
    salt: bytes = b""
    replacements: dict[str, str] = field(default_factory=dict)


def compile_custom(items: Iterable[Mapping[str, Any] | CustomDetector], where: str) -> list[Detector]:
    """Compile custom detectors, naming the bad entry (`security.pii.custom_detectors[1].pattern`) on error."""
    out = []
    for index, item in enumerate(items):
        spec = item if isinstance(item, CustomDetector) else None
        if spec is None:
            if not isinstance(item, Mapping):
                raise ValidationError(f"{where}[{index}]", "a dict with name, pattern and replacement", item)
            name, pattern, replacement = item.get("name"), item.get("pattern"), item.get("replacement")
        else:
            name, pattern, replacement = spec.name, spec.pattern, spec.replacement
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{where}[{index}].name", "a non-empty string", name)
        if not isinstance(pattern, str) or not pattern:
            raise ValidationError(f"{where}[{index}].pattern", "a regular expression", pattern)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValidationError(f"{where}[{index}].pattern", f"a valid regular expression ({exc})", pattern) from None
        if replacement is not None and not isinstance(replacement, str):
            raise ValidationError(f"{where}[{index}].replacement", "a string", replacement)
        tag = replacement or f"[REDACTED_{re.sub(r'[^A-Z0-9]+', '_', name.upper()).strip('_')}]"
        out.append(Detector(name.strip(), compiled, tag))
    return out


def build_rules(*, patterns: list[str] | None = None, custom: Iterable[Mapping[str, Any] | CustomDetector] = (),
                fields: Iterable[str] | None = None, mode: str = "replace", salt: str | bytes | None = None,
                replacements: Mapping[str, str] | None = None) -> RedactionRules:
    """Return the rules for these options; custom detectors run before the built-in ones."""
    if mode not in ("replace", "hash"):
        raise ValidationError("security.pii.mode", "'replace' or 'hash'", mode)
    detectors = [*compile_custom(custom, "security.pii.custom_detectors"), *select(patterns)]
    salt_bytes = salt.encode() if isinstance(salt, str) else (salt or b"")
    return RedactionRules(detectors, tuple(_norm_key(f) for f in (DEFAULT_FIELDS if fields is None else fields)),
                          "hash" if mode == "hash" else "replace", salt_bytes, dict(replacements or {}))


class Redactor:
    """Apply RedactionRules to strings and nested JSON-like values."""

    def __init__(self, rules: RedactionRules) -> None:
        self.rules = rules
        self._fields = frozenset(rules.fields)
        self._field_suffixes = tuple(rules.fields)
        self._key_cache: dict[str, bool] = {}
        # Prefilters, so most detectors skip a text without running their costlier pattern: a detector
        # with needles runs only when one of them occurs in the lower-cased text (a looser test than
        # the case-sensitive one, so it never skips a match). Each distinct needle is tested once per
        # text with a plain `in`, and only the detectors a needle points at are visited at all.
        self._plan = [(d, d.min_digits, d.min_len, d.gate) for d in rules.detectors]
        by_needle: dict[str, set[int]] = {}
        for index, detector in enumerate(rules.detectors):
            for needle in detector.needles:
                by_needle.setdefault(needle.lower(), set()).add(index)
        self._needles = tuple(by_needle)
        self._by_needle = {needle: frozenset(found) for needle, found in by_needle.items()}
        self._always = frozenset(i for i, d in enumerate(rules.detectors) if not d.needles)
        self.found: dict[str, int] = {}

    def _tag(self, detector: Detector, secret: str) -> str:
        tag = self.rules.replacements.get(detector.name, detector.replacement)
        if self.rules.mode == "hash":
            # A keyed hash: the same value always gives the same tag (joins and counts still work), and
            # without the salt nobody can confirm a guess (an email) against the stored tag.
            digest = hmac.new(self.rules.salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
            return f"{tag[:-1]}:{digest[:12]}{tag[-1]}" if tag.endswith(("]", ">", ")")) else f"{tag}:{digest[:12]}"
        return tag

    def spans(self, text: str) -> list[tuple[int, int, Detector]]:
        """Return the sensitive (start, end, detector) spans of text, without overlaps, in order."""
        taken: list[tuple[int, int, Detector]] = []
        digits = -1
        size = len(text)
        lowered = text.lower()
        hits = [needle for needle in self._needles if needle in lowered]
        visit: Iterable[int] = self._always
        if hits:
            chosen = set(self._always)
            for needle in hits:
                chosen |= self._by_needle[needle]
            visit = chosen
        for index in sorted(visit):
            detector, min_digits, min_len, gate = self._plan[index]
            if size < min_len:
                continue
            if min_digits:
                if digits < 0:
                    digits = size - len(text.translate(_DROP_DIGITS))
                if digits < min_digits:
                    continue
            if gate is not None and gate.search(text) is None:
                continue
            for match in detector.pattern.finditer(text):
                start, end = match.span(detector.group)
                if start < 0 or start == end:
                    continue
                if taken and any(start < e and s < end for s, e, _ in taken):
                    continue  # an earlier, more specific detector already covers it (checked first: cheaper)
                if detector.check is not None and not detector.check(match.group(detector.group)):
                    continue
                taken.append((start, end, detector))
        taken.sort(key=lambda span: span[0])
        return taken

    def redact_text(self, text: str) -> str:
        """Return text with every detected value replaced by its tag (or keyed hash)."""
        if len(text) < 6:
            return text
        spans = self.spans(text)
        if not spans:
            return text
        parts, last = [], 0
        for start, end, detector in spans:
            parts.append(text[last:start])
            parts.append(self._tag(detector, text[start:end]))
            self.found[detector.name] = self.found.get(detector.name, 0) + 1
            last = end
        parts.append(text[last:])
        return "".join(parts)

    def sensitive_key(self, key: str) -> bool:
        """Return True when a field named key is replaced whatever its value (db_password, apiKey, token …)."""
        found = self._key_cache.get(key)
        if found is None:
            norm = _norm_key(key)
            found = norm in self._fields or (bool(norm) and norm.endswith(self._field_suffixes))
            if len(self._key_cache) < 10_000:  # key names are few; never let odd input grow it unbounded
                self._key_cache[key] = found
        return found

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """Return value with strings redacted and sensitive keys' values replaced, at any nesting depth."""
        if isinstance(value, str):
            return self.redact_text(value)
        if depth >= MAX_DEPTH:
            return FIELD_REPLACEMENT if isinstance(value, dict | list | tuple) else value
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and self.sensitive_key(key) and item is not None:
                    out[key] = FIELD_REPLACEMENT
                    self.found["field"] = self.found.get("field", 0) + 1
                else:
                    out[key] = self.redact_value(item, depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self.redact_value(item, depth + 1) for item in value]
        return value
