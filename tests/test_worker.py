"""The background batch worker: batching, flush, shutdown twice, backpressure, fork, collection."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref

import pytest

from vibekit_telemetry.worker import BatchWorker


class Sink:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: list[int]) -> None:
        self.gate.wait()
        time.sleep(self.delay)
        self.batches.append(batch)

    @property
    def items(self) -> list[int]:
        return [i for b in self.batches for i in b]


def test_items_arrive_in_order_after_flush() -> None:
    sink = Sink()
    worker = BatchWorker(sink, batch_size=10, interval_s=10)
    for i in range(1000):
        assert worker.submit(i)
    assert worker.flush(5)
    assert sink.items == list(range(1000))
    worker.shutdown(5)


def test_interval_flushes_a_small_batch() -> None:
    sink = Sink()
    worker = BatchWorker(sink, batch_size=1000, interval_s=0.05)
    worker.submit(1)
    deadline = time.monotonic() + 5
    while not sink.items and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.items == [1]
    worker.shutdown(5)


def test_max_batch_bounds_each_call() -> None:
    sink = Sink()
    sink.gate.clear()
    worker = BatchWorker(sink, batch_size=1, interval_s=10, max_batch=7)
    for i in range(30):
        worker.submit(i)
    sink.gate.set()
    worker.flush(5)
    assert max(len(b) for b in sink.batches) <= 7
    assert sink.items == list(range(30))
    worker.shutdown(5)


def test_shutdown_writes_the_rest_and_is_safe_twice() -> None:
    sink = Sink()
    worker = BatchWorker(sink, batch_size=10_000, interval_s=60)
    for i in range(50):
        worker.submit(i)
    assert worker.shutdown(5)
    assert worker.shutdown(5)
    assert sink.items == list(range(50))
    assert worker.submit(99) is False


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest", "block"])
def test_backpressure_counts_every_drop(policy: str) -> None:
    sink = Sink()
    sink.gate.clear()  # the writer is stuck, so the queue fills
    worker = BatchWorker(sink, batch_size=1, interval_s=0.01, max_queue=10, max_batch=1,
                         policy=policy, block_timeout_s=0.01)  # type: ignore[arg-type]
    time.sleep(0.05)
    accepted = sum(worker.submit(i) for i in range(100))
    stats = worker.stats
    dropped = stats.dropped_newest + stats.dropped_oldest + stats.dropped_block_timeout
    sink.gate.set()
    worker.flush(5)
    written = len(sink.items)
    if policy == "drop_oldest":
        assert accepted == 100 and stats.dropped_oldest >= 85
        assert sink.items[-1] == 99  # the newest survive
    else:
        assert accepted + dropped == 100 and dropped >= 85
    assert written + stats.dropped_oldest == accepted
    worker.shutdown(5)


def test_block_policy_waits_for_room() -> None:
    sink = Sink(delay=0.001)
    worker = BatchWorker(sink, batch_size=5, interval_s=0.01, max_queue=5, max_batch=5,
                         policy="block", block_timeout_s=5)
    for i in range(200):
        assert worker.submit(i)
    worker.flush(10)
    assert sink.items == list(range(200))
    assert worker.stats.dropped_block_timeout == 0
    worker.shutdown(5)


def test_failing_batch_is_counted_and_the_worker_survives() -> None:
    calls: list[list[int]] = []

    def process(batch: list[int]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("boom")

    worker = BatchWorker(process, batch_size=1, interval_s=0.01)
    worker.submit(1)
    worker.flush(5)
    worker.submit(2)
    worker.flush(5)
    assert worker.stats.batch_errors == 1 and worker.is_alive()
    assert calls[-1] == [2]
    worker.shutdown(5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_worker_runs_again_in_a_forked_child() -> None:
    sink = Sink()
    worker = BatchWorker(sink, batch_size=1, interval_s=0.01)
    worker.submit(1)
    worker.flush(5)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its own thread must write its own items
        try:
            worker.submit(2)
            ok = worker.flush(5) and sink.items[-1] == 2 and worker.is_alive()
            os.write(write_fd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.waitpid(pid, 0)
    worker.shutdown(5)


def test_worker_is_collected_after_shutdown() -> None:
    worker = BatchWorker(Sink(), batch_size=1, interval_s=0.01)
    worker.shutdown(5)
    ref = weakref.ref(worker)
    del worker
    gc.collect()
    assert ref() is None


def test_drops_from_many_threads_are_all_counted() -> None:
    sink = Sink()
    sink.gate.clear()  # the writer is stuck: nearly everything is dropped
    worker = BatchWorker(sink, batch_size=1, interval_s=0.01, max_queue=50, max_batch=1, policy="drop_newest")
    accepted: list[int] = []

    def produce() -> None:
        accepted.append(sum(worker.submit(i) for i in range(20_000)))

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(accepted) + worker.stats.dropped_newest == 4 * 20_000
    sink.gate.set()
    worker.shutdown(5)


def test_a_commit_waits_for_an_announced_batch_and_takes_both(monkeypatch: pytest.MonkeyPatch) -> None:
    # Group commit (durable HTTP ingest): a batch announced with expect() joins the commit under way.
    import vibekit_telemetry.worker as worker_module

    monkeypatch.setattr(worker_module, "GATHER_S", 30.0)  # the wait ends when the batch comes, not on time
    sink = Sink()
    worker = BatchWorker(sink, batch_size=1000, interval_s=10)
    arrival = worker.expect()
    assert worker.submit_bulk(1, 1, urgent=True)
    time.sleep(0.2)  # the writer is awake and waiting for the announced batch
    assert sink.batches == []
    assert worker.submit_bulk(2, 1, urgent=True)
    arrival.done()
    arrival.done()  # twice is harmless: the count of announced batches stays right
    assert worker.flush(5)
    assert sink.batches == [[1, 2]]
    assert worker.submit_bulk(3, 1, urgent=True) and worker.flush(5)  # nothing announced: no wait
    assert sink.batches == [[1, 2], [3]]
    worker.shutdown(5)


def test_an_abandoned_announcement_releases_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    import vibekit_telemetry.worker as worker_module

    monkeypatch.setattr(worker_module, "GATHER_S", 30.0)
    sink = Sink()
    worker = BatchWorker(sink, batch_size=1000, interval_s=10)
    arrival = worker.expect()  # e.g. a request refused with 400: its batch never comes
    assert worker.submit_bulk(1, 1, urgent=True)
    arrival.done()
    assert worker.flush(5)
    assert sink.batches == [[1]]
    worker.shutdown(5)


def test_an_announcement_never_done_delays_a_commit_only_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    import vibekit_telemetry.worker as worker_module

    monkeypatch.setattr(worker_module, "GATHER_S", 0.05)
    sink = Sink()
    worker = BatchWorker(sink, batch_size=1000, interval_s=10)
    worker.expect()  # a client that never finishes its body
    for i in range(3):
        assert worker.submit_bulk(i, 1, urgent=True)
        assert worker.flush(5)  # committed after at most GATHER_S, each time
    assert sink.items == [0, 1, 2]
    worker.shutdown(5)
