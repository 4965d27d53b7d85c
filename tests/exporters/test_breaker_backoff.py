"""The circuit breaker's states and the backoff's delays, on a controlled clock and random source."""

from __future__ import annotations

import random
import threading

import pytest

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.exporters import Backoff, CircuitBreaker


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_at_the_threshold_and_refuses_calls() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_timeout_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and breaker.times_opened == 1
    assert not breaker.allow()
    clock.now += 4
    assert breaker.retry_after() == pytest.approx(6)


def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_lets_one_probe_through_whose_result_decides() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_timeout_s=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.record_failure()  # the probe failed: open for another timeout
    assert breaker.state == "open" and breaker.times_opened == 2 and not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breaker_counts_failures_from_many_threads_exactly() -> None:
    breaker = CircuitBreaker(failure_threshold=4001, clock=Clock())

    def fail() -> None:
        for _ in range(1000):
            breaker.record_failure()

    threads = [threading.Thread(target=fail) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.state == "closed"  # 4000 failures: one short of the threshold
    breaker.record_failure()
    assert breaker.state == "open"


@pytest.mark.parametrize(("options", "field"), [
    ({"failure_threshold": 0}, "failure_threshold"),
    ({"open_timeout_s": 0}, "open_timeout_s"),
])
def test_breaker_options_are_checked(options: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CircuitBreaker(**options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(base_s=0.5, max_s=8.0, rng=lambda: 1.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert Backoff(0.5, 8.0, rng=lambda: 0.0).delay(3) == 0.0
    assert backoff.delay(10_000) == 8.0  # days of failures do not overflow


def test_backoff_delays_are_spread_over_the_whole_range() -> None:
    rng = random.Random(7)
    backoff = Backoff(base_s=1.0, max_s=100.0, rng=rng.random)
    delays = [backoff.delay(4) for _ in range(2000)]  # ceiling 8 s
    assert 0 <= min(delays) < 0.5 and 7.5 < max(delays) <= 8.0
    assert 3.5 < sum(delays) / len(delays) < 4.5


def test_backoff_options_are_checked() -> None:
    with pytest.raises(ValidationError) as info:
        Backoff(base_s=2, max_s=1)
    assert info.value.field == "retry_max_s"


def test_half_open_probes_close_the_breaker_only_after_that_many_successes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_timeout_s=5, clock=clock, half_open_probes=3)
    breaker.record_failure()
    clock.now += 5
    for _ in range(2):
        assert breaker.allow() and not breaker.allow()  # one probe at a time
        breaker.record_success()
        assert breaker.state == "half_open"
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.allow()
    breaker.record_failure()  # the second probe fails: open again, the count of good probes starts over
    assert breaker.state == "open" and breaker.times_opened == 3


def test_trip_opens_the_breaker_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=100, open_timeout_s=5, clock=clock)
    breaker.trip()
    assert breaker.state == "open" and not breaker.allow() and breaker.times_opened == 1
    clock.now += 5
    assert breaker.allow()


def test_half_open_probes_must_be_a_positive_integer() -> None:
    with pytest.raises(ValidationError, match="half_open_probes"):
        CircuitBreaker(half_open_probes=0)
