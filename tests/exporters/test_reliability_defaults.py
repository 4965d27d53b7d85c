"""Exporters take seed 001's `reliability` options (retry, backoff, breaker) unless they set their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _exporter_helpers import free_port, wait_for

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.exporters.delivery import DeliveryWorker

RELIABILITY: dict[str, Any] = {
    "retry": {"maxAttempts": 2, "backoff": "linear", "baseMs": 10, "maxMs": 40, "jitter": False},
    "circuitBreaker": {"threshold": 1000, "timeout": 60_000, "halfOpenProbes": 2},
}


def _workers(telemetry: Telemetry) -> list[DeliveryWorker]:
    return telemetry.runtime.exporters.workers  # type: ignore[union-attr]


def test_a_webhook_with_no_options_uses_the_reliability_section(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # connection refused: every attempt fails
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": dead, "start_at": "beginning"}},
        {"type": "webhook", "options": {"url": dead, "name": "own", "start_at": "beginning",
                                        "retry_attempts": 1000, "retry_base_s": 0.01, "retry_max_s": 0.02}},
    ], reliability=RELIABILITY, stream_flush_interval_ms=20)
    try:
        defaults, own = _workers(telemetry)
        assert defaults.backoff.linear and defaults.backoff.base_s == 0.01 and defaults.backoff.max_s == 0.04
        assert defaults.backoff.delay(3) == pytest.approx(0.03)  # linear, no jitter: 3 x base
        assert defaults.breaker.failure_threshold == 1000 and defaults.breaker.open_timeout_s == 60
        assert defaults.breaker.half_open_probes == 2 and defaults.retry_attempts == 2
        telemetry.track_start("claude", "code", "to a dead webhook")
        assert telemetry.flush(10)
        # Behaviour: the first try and maxAttempts=2 retries fail, then the worker pauses for the breaker's
        # 60 s timeout, though the threshold (1000 failures) is far away.
        assert wait_for(lambda: defaults.breaker.state == "open", 20)
        assert defaults.failures == 3 and defaults.delivered == 0 and defaults.poisoned == 0
        # The exporter that set its own retry_attempts keeps retrying: its breaker stays closed.
        assert wait_for(lambda: own.failures > 10, 20)
        assert own.breaker.state == "closed" and own.retry_attempts == 1000 and own.backoff.base_s == 0.01
        # What it did not set comes from the reliability section.
        assert own.backoff.linear and own.breaker.failure_threshold == 1000
    finally:
        telemetry.shutdown(timeout=2)


def test_without_a_reliability_section_exporters_keep_the_documented_defaults(tmp_path: Path) -> None:
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
        {"type": "webhook", "options": {"url": f"http://127.0.0.1:{free_port()}/hook"}},
    ])
    try:
        (worker,) = _workers(telemetry)
        assert (worker.backoff.base_s, worker.backoff.max_s, worker.backoff.linear) == (0.1, 5.0, False)
        assert (worker.breaker.failure_threshold, worker.breaker.open_timeout_s) == (5, 30.0)
        assert worker.retry_attempts == 5
    finally:
        telemetry.shutdown(timeout=2)


@pytest.mark.parametrize(("option", "value"), [("backoff", "cubic"), ("jitter", "yes"), ("retry_attempts", -1),
                                               ("half_open_probes", 0)])
def test_bad_delivery_options_name_the_field(tmp_path: Path, option: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        Telemetry(storage=[{"type": "sqlite", "options": {"path": str(tmp_path / "t.db")}},
                           {"type": "webhook", "options": {"url": "http://127.0.0.1:9/hook", option: value}}],
                  raise_on_error=True)
    assert caught.value.field == f"storage[1].options.{option}"
