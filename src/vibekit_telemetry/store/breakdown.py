"""What the ReadBreakdown methods share on every backend: argument checks, rollup pieces, percentiles.

A window [since, until] is read in whole minutes: the minute holding `since` through the minute
holding `until`. Whole hours inside it come from the hour rollups and whole days from the day
rollups, minutes only at the edges, so a 24-hour window is ~24 hour rows plus at most two hours of
minute rows per agent and event type, whatever the number of events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from ..errors import ValidationError
from ._batch import ROLLUP_PERIODS
from .base import BREAKDOWN_PERCENTILES, SERIES_PERIODS

MINUTE: Final = ROLLUP_PERIODS["minute"]
# The widest window a breakdown reads when since/until are not given (epoch ms; 9999-12-31 is below it).
FAR_FUTURE: Final = 253_402_300_800_000
# A rollup piece: (period, first bucket_start, end bucket_start exclusive).
Piece = tuple[str, int, int]


def check_window(since: int | None, until: int | None, bucket: str | None = None) -> tuple[int, int]:
    """Return (since, until) with None filled in (all time), or raise naming the bad argument."""
    lo = 0 if since is None else since
    hi = FAR_FUTURE if until is None else until
    for name, value in (("since", lo), ("until", hi)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(name, "epoch milliseconds (a non-negative int)", value)
    if hi < lo:
        raise ValidationError("until", f"a time at or after since ({lo})", hi)
    if bucket is not None and bucket not in SERIES_PERIODS:
        raise ValidationError("bucket", f"one of {', '.join(SERIES_PERIODS)} or None", bucket)
    return lo, hi


def check_categories(categories: Sequence[str]) -> list[str]:
    """Return the agent names as a list, or raise naming `categories`."""
    if isinstance(categories, str):
        raise ValidationError("categories", "a list of agent names, not one string", categories)
    out = list(categories)
    for item in out:
        if not isinstance(item, str):
            raise ValidationError("categories", "agent names (strings)", item)
    return out


def rollup_pieces(since: int, until: int, bucket: str | None) -> list[Piece]:
    """Cover the minutes [since, until] with minute rollups at the edges and the coarsest rollups
    (no coarser than `bucket`) inside; the pieces do not overlap and add up to the window exactly."""
    lo = since // MINUTE * MINUTE
    end = until // MINUTE * MINUTE + MINUTE  # exclusive: the minute holding `until` is in
    coarsest = {"minute": 0, "hour": 1, "day": 2, None: 2}[bucket]
    sizes = [("hour", ROLLUP_PERIODS["hour"]), ("day", ROLLUP_PERIODS["day"])][:coarsest]
    return _split(lo, end, "minute", sizes)


def _split(lo: int, end: int, finest: str, coarser: list[tuple[str, int]]) -> list[Piece]:
    if not coarser:
        return [(finest, lo, end)] if lo < end else []
    period, size = coarser[0]
    first = -(-lo // size) * size
    last = end // size * size
    if first >= last:
        return [(finest, lo, end)] if lo < end else []
    inner = _split(first, last, period, coarser[1:])
    return [*([(finest, lo, first)] if lo < first else []), *inner, *([(finest, last, end)] if last < end else [])]


def nearest_rank(sorted_values: Sequence[float],
                 percentiles: Iterable[int] = BREAKDOWN_PERCENTILES) -> dict[int, float]:
    """Nearest-rank percentiles (the value at rank ceil(p*n/100)) of already sorted values: what the SQL
    stores compute with ROW_NUMBER(), so every backend answers the same."""
    n = len(sorted_values)
    if not n:
        return {}
    return {p: float(sorted_values[max(1, (p * n + 99) // 100) - 1]) for p in percentiles}


G = TypeVar("G")


def ordered_groups(groups: list[G], size: Callable[[G], int]) -> list[G]:
    """Biggest group first, ties by key (None first) so every backend agrees whatever its collation."""
    def order(g: Any) -> tuple[int, tuple[tuple[bool, str], ...]]:
        return (-size(g), tuple((v is not None, v or "") for v in g.key))

    return sorted(groups, key=order)


def none_if_empty(value: str | None) -> str | None:
    """Rollups key a missing agent or action as '': breakdowns report it as None, as sessions do."""
    return value or None
