"""The destination is down for 30 s under load: nothing lost, nothing duplicated, the writer unaffected.

Real components throughout: a SQLite store written by a thread calling store_batch continuously, the
webhook exporter following it, and an HTTP receiver on a loopback port that is closed for 30 s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from _exporter_helpers import Receiver, event, wait_for

from vibekit_telemetry.exporters import Backoff, CircuitBreaker, StoreFollower, WebhookExporter
from vibekit_telemetry.store.sql import SQLStore

OUTAGE_S = 30.0
BATCH = 100
# Each writer pauses between commits so the test's catch-up stays short; its throughput is measured
# over the time spent inside store_batch, which is what an exporter could slow down.
PAUSE_S = 0.012


class Writer:
    """A thread that writes batches into the store continuously and wakes the follower after each."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self.written = 0
        self.busy_s = 0.0  # time spent inside store_batch
        self.follower: StoreFollower | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = [event(text="load") for _ in range(BATCH)]
            began = time.perf_counter()
            stored = self.store.store_batch(batch).stored
            self.busy_s += time.perf_counter() - began
            self.written += stored
            if self.follower is not None:
                self.follower.notify()  # what the runtime does after each commit
            self._stop.wait(PAUSE_S)

    def start(self) -> None:
        self._thread.start()

    def mark(self) -> tuple[int, float]:
        """(events written, seconds inside store_batch) so far."""
        return self.written, self.busy_s

    def rate_since(self, mark: tuple[int, float]) -> float:
        """Events written per second of store_batch time since `mark`."""
        return (self.written - mark[0]) / max(self.busy_s - mark[1], 1e-9)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _all_ids(store: SQLStore) -> list[str]:
    out: list[str] = []
    after = 0
    while rows := store.read_committed(after, 5000):
        out += [e.event_id for _, e in rows if e.event_id]
        after = rows[-1][0]
    return out


def _follower(url: str, store: SQLStore, **options: Any) -> StoreFollower:
    return StoreFollower(WebhookExporter(url, name="hook", timeout_s=5, batch_size=2000), store,
                         backoff=Backoff(0.05, 1.0), breaker=CircuitBreaker(failure_threshold=3, open_timeout_s=2.0),
                         poll_interval_s=0.2, **options)


def test_destination_down_for_30s_under_load(tmp_path: Path) -> None:
    path = tmp_path / "load.db"
    store = SQLStore(path)
    store.initialize()
    # The control: a second store written the same way at the same time, with no exporter. Both
    # writers share the machine and grow their files alike, so their rates compare fairly.
    control = SQLStore(tmp_path / "control.db")
    control.initialize()
    receiver = Receiver()
    receiver.start()
    writer, control_writer = Writer(store), Writer(control)
    follower = _follower(receiver.url, store, start_at="beginning")
    writer.follower = follower
    follower.start()
    writer.start()
    control_writer.start()
    try:
        assert wait_for(lambda: follower.delivered > 0)

        receiver.stop()  # the port is closed: connection refused
        marks = writer.mark(), control_writer.mark()
        time.sleep(OUTAGE_S)
        down, baseline = writer.rate_since(marks[0]), control_writer.rate_since(marks[1])
        assert follower.breaker.times_opened >= 1 and follower.breaker.state != "closed"
        assert follower.failures >= 3 and "refused" in str(follower.last_error)

        receiver.start()
        time.sleep(2.0)
    finally:
        writer.stop()
        control_writer.stop()
        control.shutdown()
        if not receiver.running:
            receiver.start()
    try:
        assert wait_for(lambda: follower.status()["lag"] == 0, timeout=60)
        assert follower.breaker.state == "closed"
        stored = _all_ids(store)
        received = receiver.received()
        duplicates = len(received) - len(set(received))
        print(f"writers: {baseline:.0f} events/s with no exporter, {down:.0f} events/s followed by the exporter "
              f"while its destination was down; {len(stored)} events stored, {len(received)} received, "
              f"{duplicates} duplicates; "
              f"breaker opened {follower.breaker.times_opened} times")
        assert set(received) == set(stored) and len(stored) == writer.written  # no id lost
        assert duplicates == 0
        # A regression guard, not a benchmark: a writer blocked by the exporter would fall far below this.
        assert down >= 0.5 * baseline
        assert follower.shutdown(timeout=5)
        assert store.load_cursor("hook") == store.committed_position()
        store.shutdown()

        # Restart from a new store object: it continues from the persisted cursor and resends nothing.
        reopened = SQLStore(path)
        reopened.initialize()
        later = [event(text="after restart") for _ in range(1000)]
        reopened.store_batch(later)
        before = receiver.count()
        again = _follower(receiver.url, reopened)
        again.start()
        assert wait_for(lambda: receiver.count() >= before + 1000)
        assert again.shutdown(timeout=5)
        assert receiver.received()[before:] == [e.event_id for e in later]
        reopened.shutdown()
    finally:
        receiver.stop()
