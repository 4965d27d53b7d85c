"""UUIDv7 ids: format, order within a process, and no shared random bits across fork()."""

from __future__ import annotations

import os
import re
import time
import uuid

import pytest

from vibekit_telemetry.ids import uuid7, uuid7_many

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_version_7_and_sort_by_creation() -> None:
    ids = [uuid7() for _ in range(5_000)]
    assert all(UUID7.match(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert uuid.UUID(ids[0]).version == 7


def test_a_future_timestamp_keeps_its_time_without_moving_the_clock() -> None:
    future_ms = 4_102_444_800_000  # 2100-01-01
    far = uuid7(future_ms)
    assert int(far.replace("-", "")[:12], 16) == future_ms
    assert uuid7() < far  # the process clock was not dragged into the future


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_repeats_the_parents_random_bits() -> None:
    uuid7()  # the parent's random pool is now filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids' random parts, then leave at once
        os.close(read)
        os.write(write, ",".join(uuid7()[19:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {uuid7()[19:] for _ in range(50)}
    assert len(child) == 50
    assert not child & parent


def test_ids_made_in_a_batch_keep_order_format_and_times_across_pool_refills() -> None:
    # 1,500 ids draw 24 KB of random hex: several refills of the 4 KiB pool inside one call.
    now_ms = int(time.time() * 1000)
    future_ms = 4_102_444_800_000
    stamps: list[int | None] = [None] * 700 + [future_ms] + [now_ms - 5] * 799
    ids = uuid7_many(stamps)
    assert len(ids) == len(stamps) == len(set(ids))
    assert all(UUID7.match(i) for i in ids)
    assert int(ids[700].replace("-", "")[:12], 16) == future_ms  # its own time
    ordinary = ids[:700] + ids[701:]
    assert ordinary == sorted(ordinary)  # a past timestamp never sorts before ids already made
    assert ordinary[-1] < uuid7() < ids[700]  # the future id did not move the process clock
