"""A thread-safe circuit breaker: stop calling a destination that keeps failing, probe it now and then."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final, Literal

from ..errors import ValidationError

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"
State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """closed -> (failure_threshold failures in a row) -> open -> (open_timeout_s) -> half_open.

    In half_open one caller at a time gets allow() == True (a probe); `half_open_probes` successful
    probes in a row close the breaker, a failed one opens it again for another open_timeout_s. While
    open, callers wait instead of calling, so a dead destination costs one attempt per timeout, not
    one per batch.
    """

    def __init__(self, failure_threshold: int = 5, open_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, *, half_open_probes: int = 1) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValidationError("failure_threshold", "an integer >= 1", failure_threshold)
        if not open_timeout_s > 0:
            raise ValidationError("open_timeout_s", "a number of seconds > 0", open_timeout_s)
        if isinstance(half_open_probes, bool) or not isinstance(half_open_probes, int) or half_open_probes < 1:
            raise ValidationError("half_open_probes", "an integer >= 1", half_open_probes)
        self.half_open_probes = half_open_probes
        self._probe_successes = 0
        self.failure_threshold, self.open_timeout_s = failure_threshold, float(open_timeout_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = CLOSED
        self._failures = 0  # consecutive failures while closed
        self._opened_at = 0.0
        self._probing = False
        self.times_opened = 0

    @property
    def state(self) -> State:
        """The current state; an open breaker whose timeout has passed reports half_open."""
        with self._lock:
            return self._current()

    def _current(self) -> State:
        if self._state == OPEN and self._clock() - self._opened_at >= self.open_timeout_s:
            self._state, self._probing, self._probe_successes = HALF_OPEN, False, 0
        return self._state

    def allow(self) -> bool:
        """Return whether a call may go out now (in half_open: only the one probe)."""
        with self._lock:
            state = self._current()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def retry_after(self) -> float:
        """Return the seconds until allow() may say yes again (0 when it would now)."""
        with self._lock:
            state = self._current()
            if state == OPEN:
                return max(0.0, self.open_timeout_s - (self._clock() - self._opened_at))
            if state == HALF_OPEN and self._probing:
                return self.open_timeout_s  # until the probe reports; a success ends the wait early
            return 0.0

    def record_success(self) -> None:
        """A call succeeded: forget past failures; in half_open, close after enough good probes."""
        with self._lock:
            if self._current() == HALF_OPEN:
                self._probe_successes += 1
                self._probing = False  # the next probe may go
                if self._probe_successes < self.half_open_probes:
                    return
            self._state, self._failures, self._probing = CLOSED, 0, False

    def trip(self) -> None:
        """Open the breaker now (a batch used up its retry attempts): calls pause for open_timeout_s."""
        with self._lock:
            if self._current() != OPEN:
                self._state, self._opened_at, self._probing, self._failures = OPEN, self._clock(), False, 0
                self.times_opened += 1

    def record_failure(self) -> None:
        """A call failed: count it; open the breaker at the threshold, or again after a failed probe."""
        with self._lock:
            state = self._current()
            if state == CLOSED:
                self._failures += 1
                if self._failures < self.failure_threshold:
                    return
            elif state == OPEN:
                return  # a call let through before it opened; the timer keeps running
            self._state, self._opened_at, self._probing = OPEN, self._clock(), False
            self._failures = 0
            self.times_opened += 1
