"""The chain's `sample` step: per-session head sampling, with sessions that fail always kept."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..limits import event_size

_SCALE: Final = float(1 << 64)
# What one remembered session id costs in the seen set beyond its characters: the str header (49), the
# OrderedDict's slot, index and link node. tracemalloc measured 180-230 bytes per 36-character id in
# all, with the table's growth steps; rounded up, so the bound errs on the safe side
# (tests/reliability/test_memory_shares.py measures it).
SEEN_ENTRY_BYTES: Final = 250
# The seen set's bound without memory_limit: about the real memory its 100,000 ids took before it had one.
DEFAULT_MAX_SEEN_BYTES: Final = 20_000_000


def session_score(session_id: str) -> float:
    """Return a number in [0, 1) fixed by the session id, the same in every process and every run."""
    # A hash of the id (not random()): every process that sees an event of the session, now or after a
    # restart, makes the same decision, so a session is kept or dropped whole.
    digest = hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def _is_error(event: TelemetryEvent) -> bool:
    if event.event_type == "error":
        return True
    if event.event_type == "end" and event.metadata:
        return event.metadata.get("status") == "error"
    return False


class Sample:
    """Keep a session when session_score(id) < sample_rate; every event of a kept session is kept.

    With keep_errors, the events of a session not sampled are held (bounded) until it ends: an error
    releases them all and keeps the rest of the session; a clean end drops them. Events without a
    session id are sampled by their event id. `stats()` gives the kept fraction, so counts can be scaled.

    A held event is not a drop (process returns [], nothing now): it is counted dropped once, when it
    is finally discarded (a clean end, an eviction below, discard_held at shutdown), through
    `on_discard`, which the chain sets; an error releases it uncounted.

    Held events are bounded three ways, each drop counted under its reason in `held_dropped_reasons`:
    `max_held_sessions` (the oldest session's events go), `max_held_events` per session (newer events
    of that session go), and `max_held_bytes` (estimated, limits.event_size; set from memory_limit by
    the runtime): the oldest sessions' events go until the new one fits.

    The sessions seen, remembered to count each once, are bounded by `max_seen_bytes` (estimated:
    SEEN_ENTRY_BYTES plus the id; set from memory_limit by the runtime): the session seen least recently
    is forgotten first. The keep or drop decision does not need it (it is the id's hash); a forgotten
    session that sends again is counted again in sessions_seen (and sessions_kept when sampled).
    """

    name = "sample"

    def __init__(self, sample_rate: float = 1.0, *, keep_errors: bool = True, max_held_sessions: int = 10_000,
                 max_held_events: int = 1_000, max_held_bytes: int | None = None,
                 max_seen_bytes: int = DEFAULT_MAX_SEEN_BYTES) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not 0.0 <= sample_rate <= 1.0:
            raise ValidationError("sample_rate", "a number from 0.0 to 1.0", sample_rate)
        self.sample_rate = float(sample_rate)
        self.keep_errors = keep_errors
        self.max_held_sessions = max_held_sessions
        self.max_held_events = max_held_events
        if max_held_bytes is not None and (isinstance(max_held_bytes, bool) or not isinstance(max_held_bytes, int)
                                           or max_held_bytes < 1):
            raise ValidationError("max_held_bytes", "an integer >= 1 (bytes) or None", max_held_bytes)
        self.max_held_bytes = max_held_bytes
        if isinstance(max_seen_bytes, bool) or not isinstance(max_seen_bytes, int) or max_seen_bytes < 1:
            raise ValidationError("max_seen_bytes", "an integer >= 1 (bytes)", max_seen_bytes)
        self.max_seen_bytes = max_seen_bytes
        self._held: OrderedDict[str, list[TelemetryEvent]] = OrderedDict()
        self._held_bytes: dict[str, int] = {}  # per held session, estimated (limits.event_size)
        self.held_bytes = 0
        self._rescued: OrderedDict[str, None] = OrderedDict()  # sessions kept because of an error
        # Sessions seen, least recently seen first: to count each once (bounded by max_seen_bytes).
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.seen_bytes = 0
        self.seen_forgotten = 0  # sessions forgotten to stay within max_seen_bytes
        self.sessions_seen = 0
        self.sessions_kept = 0
        self.sessions_kept_for_errors = 0
        self.held_dropped = 0
        self.held_dropped_reasons = {"max_held_sessions": 0, "max_held_events": 0, "memory_limit": 0}
        # Held events finally discarded, reported (to the chain's drop count) after the lock is released.
        self.on_discard: Callable[[list[TelemetryEvent]], None] | None = None
        self._discarded: list[TelemetryEvent] = []
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock (the parent's may have been copied while held)."""
        self._lock = threading.Lock()

    def process(self, event: TelemetryEvent) -> TelemetryEvent | list[TelemetryEvent] | None:
        """Return the event when its session is sampled (with any held events an error releases), else None."""
        if self.sample_rate >= 1.0:
            return event
        sid = event.session_id or event.event_id or ""
        sampled = self.sample_rate > 0.0 and session_score(sid) < self.sample_rate
        with self._lock:
            self._count(event.session_id or None, sampled)
            if sampled:
                return event
            if not self.keep_errors or event.session_id is None:
                return None
            out = self._hold_or_release(sid, event)
            discarded, self._discarded = self._discarded, []
        if discarded:
            self._report(discarded)
        return out

    def discard_held(self) -> int:
        """Discard every held event (at shutdown: their sessions can no longer fail); return how many."""
        with self._lock:
            discarded = [e for sid in list(self._held) for e in self._forget(sid)]
        self._report(discarded)
        return len(discarded)

    def _report(self, discarded: list[TelemetryEvent]) -> None:
        # Outside the lock: the chain counts them and tells `dropped` listeners (user code).
        if discarded and self.on_discard is not None:
            self.on_discard(discarded)

    def _count(self, sid: str | None, sampled: bool) -> None:
        """Count a session the first time it is seen (an event without one is its own, never seen again)."""
        seen = self._seen
        if sid is not None:
            if sid in seen:
                seen.move_to_end(sid)  # least recently seen is forgotten first
                return
            seen[sid] = None
            self.seen_bytes += SEEN_ENTRY_BYTES + len(sid)
            while self.seen_bytes > self.max_seen_bytes and len(seen) > 1:
                self.seen_bytes -= SEEN_ENTRY_BYTES + len(seen.popitem(last=False)[0])
                self.seen_forgotten += 1
        self.sessions_seen += 1
        self.sessions_kept += sampled

    def _hold_or_release(self, sid: str, event: TelemetryEvent) -> TelemetryEvent | list[TelemetryEvent] | None:
        if sid in self._rescued:
            if event.event_type == "end":
                self._rescued.pop(sid, None)
            return event
        if _is_error(event):
            held = self._forget(sid)
            self.sessions_kept_for_errors += 1
            if event.event_type != "end":
                self._rescued[sid] = None
                if len(self._rescued) > self.max_held_sessions:
                    self._rescued.popitem(last=False)
            return [*held, event]
        if event.event_type == "end":
            # Ended cleanly: the held events go, as the sample rate asked (the end itself: None, counted).
            self._discarded.extend(self._forget(sid))
            return None
        held = self._held.setdefault(sid, [])
        self._held.move_to_end(sid)
        if len(held) >= self.max_held_events:
            self._drop("max_held_events", 1)
            return None
        size = event_size(event)
        if self.max_held_bytes is not None:
            while self.held_bytes + size > self.max_held_bytes and next(iter(self._held)) != sid:
                self._evict("memory_limit", next(iter(self._held)))
            if self.held_bytes + size > self.max_held_bytes:  # this session alone fills the budget
                self._drop("memory_limit", 1)
                if not held:
                    self._held.pop(sid, None)
                return None
        held.append(event)
        self._held_bytes[sid] = self._held_bytes.get(sid, 0) + size
        self.held_bytes += size
        if len(self._held) > self.max_held_sessions:
            self._evict("max_held_sessions", next(iter(self._held)))
        return []  # held: not dropped (yet), so not counted

    def _evict(self, reason: str, sid: str) -> None:
        """Discard a held session's events to make room; counted under `reason` and reported as dropped."""
        evicted = self._forget(sid)
        self._drop(reason, len(evicted))
        self._discarded.extend(evicted)

    def _forget(self, sid: str) -> list[TelemetryEvent]:
        """Stop holding a session's events (released, dropped or evicted); return them."""
        self.held_bytes -= self._held_bytes.pop(sid, 0)
        return self._held.pop(sid, [])

    def _drop(self, reason: str, count: int) -> None:
        self.held_dropped += count
        self.held_dropped_reasons[reason] += count

    def stats(self) -> dict[str, Any]:
        """Sessions seen and kept, the kept fraction (scale counts by 1 / kept_fraction), what is held."""
        with self._lock:
            seen, kept = self.sessions_seen, self.sessions_kept + self.sessions_kept_for_errors
            return {"sample_rate": self.sample_rate, "keep_errors": self.keep_errors, "sessions_seen": seen,
                    "sessions_kept": kept, "sessions_kept_for_errors": self.sessions_kept_for_errors,
                    "kept_fraction": round(kept / seen, 6) if seen else 1.0,
                    "held_sessions": len(self._held), "held_events": sum(len(h) for h in self._held.values()),
                    "held_bytes": self.held_bytes, "max_held_bytes": self.max_held_bytes,
                    "seen_sessions": len(self._seen), "seen_bytes": self.seen_bytes,
                    "max_seen_bytes": self.max_seen_bytes, "seen_forgotten": self.seen_forgotten,
                    "held_dropped": self.held_dropped, "held_dropped_reasons": dict(self.held_dropped_reasons)}


def kept_fraction(runs: Iterable[Mapping[str, Any]], live: Mapping[str, Any] | None = None,
                  live_run: str | None = None) -> dict[str, Any]:
    """Sessions seen and kept by every writer (writer_runs rows), and the kept fraction to scale counts by.

    `live` is this process's own sample step stats (fresher than its row, `live_run`, which is skipped).
    Where no session was ever sampled out, or none seen, the fraction is 1.0: counts are complete.
    """
    seen = kept = 0
    for run in runs:
        if live_run is not None and run.get("run_id") == live_run:
            continue
        seen += int(run.get("sessions_seen") or 0)
        kept += int(run.get("sessions_kept") or 0)
    if live is not None:
        seen += int(live.get("sessions_seen") or 0)
        kept += int(live.get("sessions_kept") or 0)
    return {"sessions_seen": seen, "sessions_kept": kept,
            "kept_fraction": round(kept / seen, 6) if seen else 1.0}
