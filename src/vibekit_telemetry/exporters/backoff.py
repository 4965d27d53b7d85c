"""Exponential backoff with full jitter: how long to wait before retrying a failed delivery."""

from __future__ import annotations

import random
from collections.abc import Callable

from ..errors import ValidationError


class Backoff:
    """Delay before retry n (1-based): uniform in [0, min(max_s, base_s * 2 ** (n - 1))].

    Full jitter (rather than a fixed doubling) spreads the retries of many clients that failed
    together, so a destination coming back is not hit by all of them at the same instant.
    """

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0,
                 rng: Callable[[], float] = random.random, *, linear: bool = False) -> None:
        if not base_s > 0:
            raise ValidationError("retry_base_s", "a number of seconds > 0", base_s)
        if not max_s >= base_s:
            raise ValidationError("retry_max_s", f"a number of seconds >= retry_base_s ({base_s})", max_s)
        self.base_s, self.max_s, self._rng = float(base_s), float(max_s), rng
        # Seed 001 `retry.backoff: 'linear'`: base_s * n instead of doubling.
        self.linear = linear

    def ceiling(self, attempt: int) -> float:
        """Return the longest delay retry `attempt` may wait."""
        if self.linear:
            return min(self.max_s, self.base_s * max(attempt, 1))
        # The exponent is capped so a destination down for days cannot overflow the float.
        return min(self.max_s, self.base_s * 2.0 ** min(max(attempt, 1) - 1, 60))

    def delay(self, attempt: int) -> float:
        """Return a random delay for retry `attempt` (1 for the first retry)."""
        return self._rng() * self.ceiling(attempt)
