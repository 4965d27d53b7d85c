"""Adaptive batching with a backpressure threshold: a queue close to full is drained in the largest batches."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vibekit_telemetry.worker import BatchWorker


def _slow_worker(threshold: float, sizes: list[int], gate: threading.Event) -> BatchWorker:
    def commit(batch: list[Any]) -> None:
        sizes.append(len(batch))
        gate.wait(30)  # the test holds one commit open while producers fill the queue
        time.sleep(0.0005 * len(batch))  # a store whose commit time grows with the batch

    return BatchWorker(commit, batch_size=10, interval_s=0.01, max_batch=1000, max_queue=4000,
                       target_batch_ms=20, backpressure_threshold=threshold)


@pytest.mark.parametrize("threshold", [0.5, 1.0])
def test_a_queue_past_the_threshold_is_drained_in_max_batches(threshold: float) -> None:
    sizes: list[int] = []
    gate = threading.Event()
    gate.set()
    worker = _slow_worker(threshold, sizes, gate)
    try:
        for i in range(3000):
            worker.submit(i)
        assert worker.flush(60)
        shrunk = worker.batch_limit()
        assert shrunk < 100  # slow commits made the batches small
        gate.clear()
        worker.submit("held")  # the writer takes this one and waits in its commit
        assert _until(lambda: sizes and sizes[-1] == 1)
        for i in range(3000):  # 3,000 of 4,000: past a 0.5 threshold, under 1.0
            worker.submit(i)
        before = len(sizes)
        gate.set()
        assert worker.flush(60)
        drained = sizes[before:]
        if threshold == 0.5:
            # Past the threshold: the largest batches drain the queue, whatever the latency.
            assert drained[0] == 1000 and worker.drain_batches >= 1
            assert len(drained) < 3000 // shrunk
        else:
            # Never past a threshold of 1.0: latency alone decides, the batches stay small.
            assert max(drained) < 1000 and worker.drain_batches == 0
    finally:
        gate.set()
        worker.shutdown(10)


def test_a_bad_threshold_names_the_field() -> None:
    with pytest.raises(ValueError, match="backpressure_threshold"):
        BatchWorker(lambda batch: None, backpressure_threshold=1.5)


def _until(predicate: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())
