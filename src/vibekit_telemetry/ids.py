"""Time-ordered identifiers (UUIDv7, RFC 9562) for events and sessions."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
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


def uuid7(timestamp_ms: int | None = None) -> str:
    """Return a UUIDv7 string; ids made in one process sort by creation time."""
    return uuid7_many((timestamp_ms,))[0]


def uuid7_many(timestamps: Iterable[int | None]) -> list[str]:
    """Return one UUIDv7 string per timestamp (None: now), in order; one lock and clock read for all."""
    global _last_ms, _counter, _prefix_ms, _prefix, _pool, _pos
    now = int(time.time() * 1000)
    out: list[str] = []
    add = out.append
    variant = _VARIANT
    with _lock:
        # The pool, the position and the clock state as locals for the loop, stored back at the end.
        pool, pos, last_ms, counter, prefix_ms, prefix = _pool, _pos, _last_ms, _counter, _prefix_ms, _prefix
        for timestamp_ms in timestamps:
            ms = now if timestamp_ms is None else int(timestamp_ms)
            if pos + 32 > len(pool):  # room for two draws (a future time takes two)
                pool, pos = os.urandom(_POOL_BYTES).hex(), 0
            rand = pool[pos:pos + 16]
            pos += 16
            if ms > now + 1000:
                # A caller-supplied time in the future gets an id of its own time, but must not drag
                # the process clock along: every later id would carry that future time.
                h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
                add(f"{h[:8]}-{h[8:]}-7{rand[13:]}-{variant[rand[0]]}{rand[1:4]}-{pool[pos + 4:pos + 16]}")
                pos += 16
                continue
            # A 12-bit counter in rand_a keeps ids made in the same millisecond ordered (RFC 9562 §6.2,
            # method 1).
            if ms <= last_ms:
                counter += 1
                if counter > 0xFFF:
                    last_ms += 1
                    counter = 0
                ms = last_ms
            else:
                last_ms = ms
                counter = 0
            if ms != prefix_ms:  # time_high-time_mid-7, reused while the millisecond stays the same
                h = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
                prefix_ms, prefix = ms, f"{h[:8]}-{h[8:]}-7"
            # rand_b: the variant digit's two low bits and 15 more hex digits (62 random bits).
            add(f"{prefix}{_HEX3[counter]}-{variant[rand[0]]}{rand[1:4]}-{rand[4:]}")
        _pool, _pos, _last_ms, _counter, _prefix_ms, _prefix = pool, pos, last_ms, counter, prefix_ms, prefix
    return out


def _reset_after_fork() -> None:
    global _lock, _pool, _pos
    _lock = threading.Lock()
    _pool, _pos = "", 0


os.register_at_fork(after_in_child=_reset_after_fork)
