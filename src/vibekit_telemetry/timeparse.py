"""Parse the time expressions queries accept: epoch ms, ISO dates, and phrases like `1 hour ago` or `7d`."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Final

from .errors import ValidationError

_UNIT_MS: Final = {
    "ms": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
    "w": 604_800_000, "week": 604_800_000, "weeks": 604_800_000,
    "mo": 2_592_000_000, "month": 2_592_000_000, "months": 2_592_000_000,
    "y": 31_536_000_000, "year": 31_536_000_000, "years": 31_536_000_000,
}
# Larger epoch values are not times (and overflow the store's 64-bit integers): 2**53 ms is year 285,000.
MAX_MS: Final = 2**53
_AGO: Final = re.compile(r"^(\d+(?:\.\d+)?|an?|one)\s*([a-z]+?)(?:\s+ago)?$")
_LAST: Final = re.compile(r"^(?:last|past|previous)\s+(\d+\s*)?([a-z]+)$")
EXPECTED: Final = ("epoch milliseconds, an ISO date such as 2024-01-31, or a phrase such as "
                   "'now', 'today', 'yesterday', '1 hour ago', '7d', 'last week'")


def duration_ms(text: str, field: str = "duration") -> int:
    """Parse a duration such as `7d`, `30 days`, `1 month`, `2h` into milliseconds."""
    phrase = text.strip().lower()
    match = _AGO.match(phrase)
    if match is None or match.group(2) not in _UNIT_MS or phrase.endswith("ago"):
        raise ValidationError(field, "a duration such as 30d, 12h, '1 month' or '2 weeks'", text)
    amount_text, unit = match.groups()
    amount = 1.0 if amount_text in ("a", "an", "one") else float(amount_text)
    return int(amount * _UNIT_MS[unit])


def parse_time(value: int | float | str | datetime | None, field: str = "from",
               *, now_ms: int | None = None) -> int | None:
    """Return epoch milliseconds for a time expression, or None for None; raise naming `field`."""
    if value is None:
        return None
    now = now_ms if now_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(field, EXPECTED, value)
    if isinstance(value, int | float):
        if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_MS:
            raise ValidationError(field, EXPECTED, value)
        return int(value)
    phrase = value.strip().lower()
    if not phrase:
        raise ValidationError(field, EXPECTED, value)
    if phrase.isdecimal():  # not isdigit(): "¹" is a digit that int() refuses
        if len(phrase) > 16 or int(phrase) > MAX_MS:
            raise ValidationError(field, EXPECTED, value)
        return int(phrase)
    if phrase == "now":
        return now
    today = datetime.fromtimestamp(now / 1000, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if phrase == "today":
        return int(today.timestamp() * 1000)
    if phrase == "yesterday":
        return int((today - timedelta(days=1)).timestamp() * 1000)
    if phrase == "tomorrow":
        return int((today + timedelta(days=1)).timestamp() * 1000)
    last = _LAST.match(phrase)
    if last is not None:
        count_text, unit = last.groups()
        if unit in _UNIT_MS:
            count = int(count_text) if count_text else 1
            return now - count * _UNIT_MS[unit]
        raise ValidationError(field, EXPECTED, value)
    ago = _AGO.match(phrase)
    if ago is not None and ago.group(2) in _UNIT_MS:
        return now - duration_ms(phrase.removesuffix("ago").strip(), field)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(field, EXPECTED, value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
