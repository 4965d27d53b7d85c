"""Opaque cursors of keyset pagination: where the next page of a sessions or events listing starts.

A page's `next_cursor` holds its last row's position in the listing's order (the sort key, start time
and id of a session; the timestamp and id of an event), so the next page starts right after it: every
page costs what the first does, where OFFSET re-reads every row it skips. The token is base64url JSON:
opaque to clients, readable when debugging, and checked on the way back in (its listing, sort and
order must be the request's), so a bad cursor is a clear error naming the `cursor` field.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Final

from .errors import ValidationError

_EXPECTED: Final = "a next_cursor from the previous page of the same listing (same sort and order)"
# JSON integers beyond 64 bits would reach the database as a value it refuses.
_INT_RANGE: Final = 2**63


def encode(listing: str, sort: str, order: str, position: list[Any]) -> str:
    """The cursor of a row at `position` (its ORDER BY values) in a listing sorted by `sort` in `order`."""
    raw = json.dumps({"l": listing, "s": sort, "o": order, "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: Any, listing: str, sort: str, order: str, kinds: tuple[str, ...]) -> tuple[Any, ...]:
    """The position a cursor holds, checked against the listing, sort and order asked now.

    kinds: what each value of the position must be: "int", "str", or "number?" (a number or null).
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise ValidationError("cursor", _EXPECTED, cursor)
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):  # not base64, not UTF-8, not JSON
        raise ValidationError("cursor", _EXPECTED, cursor) from None
    if not isinstance(data, dict) or data.get("l") != listing:
        raise ValidationError("cursor", _EXPECTED, cursor)
    if data.get("s") != sort or data.get("o") != order:
        raise ValidationError("cursor", f"{_EXPECTED}: it was made for sort={data.get('s')!r} "
                              f"order={data.get('o')!r}, this request asks sort={sort!r} order={order!r}", cursor)
    position = data.get("p")
    if not isinstance(position, list) or len(position) != len(kinds) \
            or not all(_fits(value, kind) for value, kind in zip(position, kinds, strict=True)):
        raise ValidationError("cursor", _EXPECTED, cursor)
    return tuple(position)


def _fits(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "number?" and (value is None or isinstance(value, float)):
        return value is None or math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and -_INT_RANGE <= value < _INT_RANGE
