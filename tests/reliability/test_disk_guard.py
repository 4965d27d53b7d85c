"""The free-disk check before a commit: cheap (one statvfs per interval), and a clear typed error below the minimum."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibekit_telemetry.errors import DiskFullError, TransientStoreError
from vibekit_telemetry.limits import DiskGuard


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_asks_the_os_at_most_once_per_interval(tmp_path: Path) -> None:
    clock = Clock()
    guard = DiskGuard(str(tmp_path), min_free_mb=0.001, interval_s=1.0, clock=clock)
    for _ in range(1000):  # a writer committing a thousand batches within one interval
        guard.ensure()
    assert guard.checks == 1 and guard.free_mb() is not None and guard.free_mb() > 0  # type: ignore[operator]
    clock.now += 1.0
    guard.ensure()
    assert guard.checks == 2 and guard.holds == 0


def test_below_the_minimum_a_commit_is_refused_with_a_transient_disk_full_error(tmp_path: Path) -> None:
    guard = DiskGuard(str(tmp_path), min_free_mb=1e12, interval_s=1.0, clock=Clock())  # more than any disk
    with pytest.raises(DiskFullError, match=r"MB free in .* below min_free_disk_mb \(1e\+12\)") as caught:
        guard.ensure()
    assert isinstance(caught.value, TransientStoreError) and guard.holds == 1  # held and retried, not dropped


def test_a_directory_that_cannot_be_measured_does_not_block_writes(tmp_path: Path) -> None:
    guard = DiskGuard(str(tmp_path / "missing"), min_free_mb=1e12, interval_s=1.0, clock=Clock())
    guard.ensure()  # SQLite decides whether the write fits
    assert guard.free_mb() is None
