"""Time-ordered identifiers (UUIDv7, RFC 9562) for events and sessions."""

from __future__ import annotations

import os
import threading
import time
from typing import Final

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bits are read from the OS 4 KiB at a time (one getrandom() call per 512 ids instead of one
# per id) as hex text, and handed out 16 characters an id under the lock; a forked child drops the
# parent's pool so the two never hand out the same bits. Ids are assembled from text pieces (the
# time prefix is reused while the millisecond stays the same): a third of the cost of integer
# arithmetic and formatting, on every event's hot path.
_POOL_BYTES = 4096
_pool = ""
_pos = 0
_prefix_ms = -1
_prefix = ""
# rand_a (the 12-bit counter) as three hex digits, and the variant digit (0b10 then two random bits).
_HEX3: Final = tuple(f"{n:03x}" for n in range(4096))
_VARIANT: Final = {f"{n:x}": "89ab"[n & 3] for n in range(16)}


def _random_hex() -> str:
    """Sixteen random hex digits (64 bits) from the pool (call with _lock held)."""
    global _pool, _pos
    if _pos >= len(_pool):
        _pool, _pos = os.urandom(_POOL_BYTES).hex(), 0
    start = _pos
    _pos = start + 16
    return _pool[start:start + 16]


def _time_prefix(ms: int) -> str:
    """The id's first 14 characters for a millisecond: time_high-time_mid-7 (call with _lock held)."""
    global _prefix_ms, _prefix
    if ms != _prefix_ms:
        h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
        _prefix_ms, _prefix = ms, f"{h[:8]}-{h[8:]}-7"
    return _prefix


def uuid7(timestamp_ms: int | None = None) -> str:
    """Return a UUIDv7 string; ids made in one process sort by creation time."""
    global _last_ms, _counter
    now = int(time.time() * 1000)
    ms = now if timestamp_ms is None else int(timestamp_ms)
    with _lock:
        rand = _random_hex()
        if ms > now + 1000:
            # A caller-supplied time in the future gets an id of its own time, but must not drag the
            # process clock along: every later id would carry that future time.
            h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
            return f"{h[:8]}-{h[8:]}-7{rand[13:]}-{_VARIANT[rand[0]]}{rand[1:4]}-{_random_hex()[4:]}"
        # A 12-bit counter in rand_a keeps ids made in the same millisecond ordered (RFC 9562 §6.2, method 1).
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        # rand_b: the variant digit's two low bits and 15 more hex digits (62 random bits).
        return f"{_time_prefix(ms)}{_HEX3[_counter]}-{_VARIANT[rand[0]]}{rand[1:4]}-{rand[4:]}"


def _reset_after_fork() -> None:
    global _lock, _pool, _pos
    _lock = threading.Lock()
    _pool, _pos = "", 0


os.register_at_fork(after_in_child=_reset_after_fork)
