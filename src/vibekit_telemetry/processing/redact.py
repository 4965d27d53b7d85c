"""The chain's `redact` step: PII and secrets out of every text field before anything is stored or sent.

Stream chunks: a secret can arrive split across two chunks of one session ("sk-ant-api03-AbC" then
"dEf…"). A chunk's trailing token (and a trailing run of digits, for card and phone numbers split
at a space), when it could start a secret (it holds an ASCII letter, digit or @ : / = _ + ( -), is
held back and put in front of the session's next chunk, so the detectors see the whole value. The
concatenated stream is unchanged; only where such chunks split moves. A held tail is
released, redacted, with the session's next event (an end or error event carries it in
`stream_data`), and dropped from memory (least recently used first) past `max_sessions`.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, Final

from ..events import TelemetryEvent
from ..privacy.redactor import RedactionRules, Redactor, build_rules

_MAX_SESSIONS: Final = 10_000
# The longest tail held back per session: longer than any key the detectors know, short enough
# that a chunk is never delayed whole.
MAX_HOLD: Final = 512
# A trailing token (no whitespace), with a run of digits and separators before it (a card number
# split after "4111 1111"); or an unterminated private key block.
_TAIL: Final = re.compile(r"(?:(?<![\w])[\d(+][\d ()+.-]*)?\S*\Z")
# The same tail matched on the reversed text from its start: one anchored attempt instead of a
# search that tries (and fails) at every position of the chunk. The trailing token, then the
# longest run of digits and separators before it whose first character is a digit, ( or + not
# preceded by a word character.
_TAIL_REVERSED: Final = re.compile(r"\S*(?:[\d ()+.-]*[\d(+](?!\w))?")
_OPEN_KEY: Final = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[^\n]*(?![\s\S]*-----END)[\s\S]*\Z")
_MAX_KEY_HOLD: Final = 16_384
_SECRETISH: Final = re.compile(r"[A-Za-z0-9@:/=_+(-]")


def split_tail(text: str) -> tuple[str, str]:
    """Return (text to emit now, tail to hold back until the next chunk of the session)."""
    if "-----BEGIN" in text:
        key = _OPEN_KEY.search(text, max(0, len(text) - _MAX_KEY_HOLD))
        if key is not None:
            return text[:key.start()], text[key.start():]
    # One character more than MAX_HOLD, so the look-behind at the window's edge sees what precedes it.
    window = text[-1:-MAX_HOLD - 2:-1]
    match = _TAIL_REVERSED.match(window)
    size = match.end() if match is not None else 0
    if size > MAX_HOLD:
        size = _tail_in_window(text)
    if size == 0 or not could_be_secret(text[len(text) - size:]):
        return text, ""
    return text[:len(text) - size], text[len(text) - size:]


def _tail_in_window(text: str) -> int:
    """The tail's length when it reaches past the MAX_HOLD window (rare): the forward search, bounded."""
    match = _TAIL.search(text, max(0, len(text) - MAX_HOLD))
    return 0 if match is None else match.end() - match.start()


def could_be_secret(tail: str) -> bool:
    """Whether a chunk's trailing token could be the start of something a detector finds.

    Every detected value starts with an ASCII letter, digit or one of + ( -; a tail of other symbols
    and non-ASCII text (an emoji, a check mark, "é") is never held, so such chunks keep their boundaries.
    """
    return _SECRETISH.search(tail) is not None


class Redact:
    """Replace PII and secrets in label, stream_data, repo_url, metadata and context (any depth).

    Built by build_chain from config.security; `Redact()` with no rules changes nothing (the step
    stays in the chain so `chain.get("redact")` always finds it). exclude_fields / include_only
    apply to the top-level keys of metadata and context, before redaction.
    """

    name = "redact"

    def __init__(self, rules: RedactionRules | None = None, *, hold_stream_tails: bool = True,
                 max_sessions: int = _MAX_SESSIONS, exclude_fields: tuple[str, ...] = (),
                 include_only: tuple[str, ...] | None = None) -> None:
        self.redactor = Redactor(rules) if rules is not None else None
        # Data minimisation (seed 001 dataMinimization): top-level metadata/context keys never kept.
        self.exclude_fields = frozenset(exclude_fields)
        self.include_only = frozenset(include_only) if include_only is not None else None
        self.hold_stream_tails = hold_stream_tails
        self.max_sessions = max_sessions
        self._tails: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, **options: Any) -> Redact:
        """Build the step from build_rules options (patterns, custom, fields, mode, salt, replacements)."""
        return cls(build_rules(**options))

    @property
    def enabled(self) -> bool:
        """True when the step redacts anything."""
        return self.redactor is not None or bool(self.exclude_fields) or self.include_only is not None

    def _minimise(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in self.exclude_fields
                and (self.include_only is None or k in self.include_only)}

    def after_fork(self) -> None:
        """In a forked child: a fresh lock and no tails (they belong to the parent's sessions)."""
        self._lock = threading.Lock()
        self._tails = OrderedDict()

    def _take_tail(self, session_id: str | None) -> str:
        if session_id is None or not self._tails:
            return ""
        with self._lock:
            return self._tails.pop(session_id, "")

    def _hold(self, session_id: str, tail: str) -> None:
        with self._lock:
            self._tails[session_id] = tail
            self._tails.move_to_end(session_id)
            while len(self._tails) > self.max_sessions:
                self._tails.popitem(last=False)

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        """Return the event with every detected value replaced."""
        if self.exclude_fields or self.include_only is not None:
            if event.metadata:
                event.metadata = self._minimise(event.metadata)
            if event.context:
                event.context = self._minimise(event.context)
        redactor = self.redactor
        if redactor is None:
            return event
        held = self._take_tail(event.session_id)
        if event.event_type == "stream" and self.hold_stream_tails and event.session_id is not None:
            text = held + (event.stream_data or "")
            now, tail = split_tail(text)
            if tail:
                self._hold(event.session_id, tail)
            event.stream_data = redactor.redact_text(now)
        elif held or event.stream_data:
            event.stream_data = redactor.redact_text(held + (event.stream_data or ""))
        if event.label:
            event.label = redactor.redact_text(event.label)
        if event.repo_url:
            event.repo_url = redactor.redact_text(event.repo_url)
        if event.metadata:
            event.metadata = redactor.redact_value(event.metadata)
        if event.context:
            event.context = redactor.redact_value(event.context)
        return event

    def pending_tails(self) -> int:
        """Return how many sessions have a stream tail held back."""
        return len(self._tails)


def build_redact(security: Any) -> Redact:
    """Return the redact step config.security describes (no-op when PII redaction and minimisation are off)."""
    from ..privacy.redactor import DEFAULT_FIELDS

    pii, redaction, mini = security.pii, security.redaction, security.data_minimization
    exclude = tuple(mini.exclude_fields) if mini.enabled else ()
    include = tuple(mini.include_only) if mini.enabled and mini.include_only is not None else None
    if not pii.enabled:
        return Redact(exclude_fields=exclude, include_only=include)
    fields = [*DEFAULT_FIELDS, *redaction.fields] if redaction.enabled else list(redaction.fields)
    rules = build_rules(patterns=list(pii.patterns), custom=[c.model_dump() for c in pii.custom_detectors],
                        fields=fields, mode=pii.mode, salt=pii.hash_salt, replacements=pii.replacements)
    return Redact(rules, hold_stream_tails=pii.hold_stream_tails, exclude_fields=exclude, include_only=include)


def enable_for_server(chain: Any, security: Any) -> bool:
    """Turn PII redaction on in a server's chain when the config left it unset (pii.enabled None).

    The API server receives other hosts' prompts: redaction is its default, `pii.enabled = false`
    opts out. Returns True when the step was replaced.
    """
    if security.pii.enabled is not None:
        return False
    step = build_redact(security.model_copy(update={"pii": security.pii.model_copy(update={"enabled": True})}))
    names = [p.name for p in chain.processors]
    if "redact" not in names:
        return False
    position = names.index("redact")
    chain.remove("redact")
    if position > 0:
        chain.add(step, after=names[position - 1])
    else:
        chain.add(step, before=names[1] if len(names) > 1 else None)
    return True
