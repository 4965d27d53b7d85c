"""The replica feed under a busy writer: commits are announced and read at most once per tick, none is lost."""

from __future__ import annotations

import select
import threading
import time
from typing import Any

from vibekit_telemetry.server.replica_feed import ReplicaFeed


class _Channel:
    """A commit-notice channel without a database: records what the feed announces."""

    def __init__(self) -> None:
        self.notified: list[float] = []

    def wait(self, timeout_s: float, wake_fd: int | None = None) -> list[str]:
        if wake_fd is None:
            time.sleep(timeout_s)
        else:
            select.select([wake_fd], [], [], timeout_s)
        return []

    def notify(self, payload: str) -> None:
        self.notified.append(time.monotonic())

    def close(self) -> None:
        pass


class _Store:
    """What the feed asks of a store: the notice channel and the committed position."""

    def __init__(self) -> None:
        self.channel = _Channel()
        self.positions = 0
        self.lock = threading.Lock()

    def commit_notices(self) -> _Channel:
        return self.channel

    def committed_position(self) -> int:
        with self.lock:
            self.positions += 1
            return self.positions


class _Hub:
    subscribers: tuple[Any, ...] = ()


def test_a_busy_writer_is_announced_once_per_tick_and_its_last_commit_is_announced() -> None:
    store = _Store()
    tick = 0.05
    feed = ReplicaFeed(store, _Hub(), tick_s=tick)  # type: ignore[arg-type]
    feed.start()
    try:
        time.sleep(0.1)  # the feed has read its starting position
        started = time.monotonic()
        reads_before = store.positions
        commits = 0
        last_commit = started
        while last_commit - started < 0.5:  # a writer committing every millisecond
            last_commit = time.monotonic()
            feed.on_local_commit()
            commits += 1
            time.sleep(0.001)
        deadline = time.monotonic() + 10
        notified = store.channel.notified
        while time.monotonic() < deadline and not (notified and notified[-1] >= last_commit):
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        feed.stop()
    assert notified and notified[-1] >= last_commit, "the last commit was never announced"
    # One NOTIFY and one read per tick at most, however many commits: each was a database round trip.
    assert commits > 100
    assert len(notified) <= elapsed / tick + 2, (len(notified), elapsed)
    assert store.positions - reads_before <= elapsed / tick + 2, (store.positions - reads_before, elapsed)
