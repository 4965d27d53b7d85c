"""The stores implement the capability protocols, and a forked child never waits on the parent's lock."""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _store_helpers import ev

from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.base import (
    Auditable,
    EventIterable,
    ForkAware,
    Maintainable,
    ReadInsights,
    WriterRunRecorder,
)
from vibekit_telemetry.store.sql import SQLStore


def test_both_stores_implement_every_capability(store: Any) -> None:
    for protocol in (EventIterable, Maintainable, Auditable, WriterRunRecorder, ForkAware, ReadInsights):
        assert isinstance(store, protocol), protocol.__name__


def test_maintainable_calls_work_on_every_backend(store: Any) -> None:
    store.store_batch([ev("start"), ev("stream", at=1, stream_data="needle in here")])
    assert store.prune() == 0  # no retention configured
    store.compact()
    assert store.index_text() >= 0
    assert store.check() == []
    assert [e.event_type for e in store.query(QueryFilter(contains="needle"))] == ["stream"]


def test_auditable_and_writer_runs_round_trip(store: Any) -> None:
    store.record_audit("cli:me", "delete", "clear", {"deleted": 3})
    [entry] = store.audit_log(10)
    assert (entry["actor"], entry["action"], entry["target"], entry["details"]) == (
        "cli:me", "delete", "clear", {"deleted": 3})
    store.record_writer_run({"run_id": "r1", "events_written": 5, "updated_at": 2000, "started_at": 1000})
    store.record_writer_run({"run_id": "r1", "events_written": 9, "updated_at": 3000})
    [run] = store.writer_runs()
    assert (run["events_written"], run["started_at"], run["updated_at"]) == (9, 1000, 3000)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_children_forked_while_another_thread_writes_all_finish(make_store: Callable[..., Any],
                                                                 backend: str, tmp_path: Path) -> None:
    store: SQLStore = make_store()
    stop = threading.Event()
    written = [0]

    def write() -> None:
        # Keeps the store's lock (and the connection) busy, so forks land while it is held.
        i = 0
        while not stop.is_set():
            store.store_batch([ev("stream", "busy", at=i, stream_data="x" * 100) for _ in range(20)])
            i += 1
            written[0] += 20

    store.store_batch([ev("start", "busy")])
    # Each child reopens and writes its own session, never touching the parent's lock.
    children, statuses = _fork_beside(write, 1, stop, 20, store, "child-")
    assert sorted(statuses.values()) == [0] * len(children), f"{len(children) - len(statuses)} children hung"
    assert store.existing_sessions([f"child-{n}" for n in range(20)]) == {f"child-{n}" for n in range(20)}
    busy = store.get_session("busy")
    assert busy is not None and busy.event_count == 1 + written[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_children_forked_while_the_upkeep_job_runs_all_finish(make_store: Callable[..., Any]) -> None:
    # The scheduler's store-upkeep (planner statistics on SQLite) reads the file on its own thread. A fork
    # landing inside one of SQLite's calls copies its global mutexes held, and the child's first SQLite
    # call hangs: upkeep holds the store's lock, which a fork waits for (store/sql/fork.py).
    store: SQLStore = make_store()
    if not hasattr(store, "upkeep"):
        pytest.skip("the memory store has no upkeep job and no file to fork inside")
    store.store_batch([ev("start", "upkeep")])
    stop = threading.Event()

    def upkeep() -> None:
        while not stop.is_set():
            store.upkeep()
            store.refresh_statistics(every_table=True)

    children, statuses = _fork_beside(upkeep, 1, stop, 30, store, "upkeep-child-")
    assert sorted(statuses.values()) == [0] * len(children), f"{len(children) - len(statuses)} children hung"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("backend", ["sqlite"])
def test_children_forked_while_another_thread_reads_all_finish(make_store: Callable[..., Any],
                                                                backend: str) -> None:
    # A user's own reads (get_session, query) run outside the store's lock, on pooled connections, so
    # readers never wait for the writer. A fork landing inside one of their SQLite calls copies SQLite's
    # global mutexes held and the child's first SQLite call hangs: a fork waits for reads under way
    # (the reader gate, store/sql/fork.py).
    from vibekit_telemetry.store.sql.fork import GatedConnection

    store: SQLStore = make_store()
    with store.engine.connect() as conn:  # SQLAlchemy's seam (Engine._connection_cls) still builds ours
        assert isinstance(conn, GatedConnection)
    store.store_batch([ev("start", "read"), *(ev("stream", "read", at=i, stream_data="x" * 100) for i in range(50))])
    stop = threading.Event()
    reads = [0]

    def read() -> None:
        while not stop.is_set():
            session = store.get_session("read", with_events=True)
            assert session is not None and len(session.events) == 51
            store.query(QueryFilter(session_ids=["read"], event_types=["stream"], limit=10))
            reads[0] += 1

    children, statuses = _fork_beside(read, 2, stop, 30, store, "read-child-")  # two: more forks land in a read
    assert sorted(statuses.values()) == [0] * len(children), f"{len(children) - len(statuses)} children hung"
    assert reads[0] > 0  # the reader ran while the children were forked
    assert store.existing_sessions([f"read-child-{n}" for n in range(30)]) == {f"read-child-{n}" for n in range(30)}


def test_the_reader_gate_lets_reads_overlap_and_a_fork_drain_them() -> None:
    from vibekit_telemetry.store.sql.fork import ReaderGate

    gate = ReaderGate()
    inside, release = threading.Event(), threading.Event()

    def long_read() -> None:
        token = gate.enter()
        inside.set()
        release.wait()
        gate.leave(token)

    first = threading.Thread(target=long_read)
    first.start()
    assert inside.wait(10)
    gate.leave(gate.enter())  # another read while the first is under way: reads do not wait for each other
    drained: list[bool] = []
    fork = threading.Thread(target=lambda: drained.append(gate.close(60)))
    fork.start()
    while not gate._closed:  # the fork has begun: it waits for the first read
        fork.join(0.01)
    late = threading.Event()
    newcomer = threading.Thread(target=lambda: (gate.leave(gate.enter()), late.set()))
    newcomer.start()
    assert not late.wait(0.2)  # a read starting during the fork waits for it
    release.set()
    fork.join()
    assert drained == [True]
    assert not late.is_set()
    gate.open()  # after the fork
    assert late.wait(10)
    first.join()
    newcomer.join()
    # A fork from a thread inside a read does not wait for its own read.
    token = gate.enter()
    assert gate.close(60)
    gate.open()
    gate.leave(token)


def _fork_beside(loop: Callable[[], None], threads: int, stop: threading.Event, count: int, store: SQLStore,
                 prefix: str) -> tuple[list[int], dict[int, int]]:
    """Fork `count` children while `threads` threads run `loop` until `stop`; each child reopens the store and
    writes session f"{prefix}{n}". Return the children and the exit statuses of those that ended (a hang
    guard of 60 s, not a timing: a child stuck on a copied lock never exits)."""
    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    children: list[int] = []
    try:
        children = _fork_children(count, lambda n: _reopen_and_write(store, f"{prefix}{n}"))
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return children, _wait_all(children, 60)


def _fork_children(count: int, child: Callable[[int], int]) -> list[int]:
    """Fork `count` children; child n runs child(n) and exits with its code (1 and the traceback if it raised)."""
    pids: list[int] = []
    for n in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(n)
            except BaseException:
                traceback.print_exc()  # shown in the test's captured output
            finally:
                os._exit(code)
        pids.append(pid)
    return pids


def _reopen_and_write(store: SQLStore, session_id: str) -> int:
    store.after_fork()
    store.store_batch([ev("start", session_id)])
    return 0


def _wait_all(children: list[int], seconds: float) -> dict[int, int]:
    """Exit codes of the children that ended within `seconds` (a hang guard); the rest are killed."""
    codes: dict[int, int] = {}
    deadline = threading.Event()
    timer = threading.Timer(seconds, deadline.set)
    timer.start()
    try:
        while len(codes) < len(children) and not deadline.is_set():
            for pid in children:
                if pid not in codes:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        codes[pid] = os.waitstatus_to_exitcode(status)
            deadline.wait(0.05)
    finally:
        timer.cancel()
        for pid in children:
            if pid not in codes:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
    return codes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_telemetry_children_forked_while_another_thread_tracks_all_finish(tmp_path: Path) -> None:
    from vibekit_telemetry import Telemetry

    telemetry = Telemetry(db_path=str(tmp_path / "fork.db"), stream_flush_interval_ms=5)
    stop = threading.Event()

    def track() -> None:
        while not stop.is_set():
            sid = telemetry.track_start("claude", "code", "parent")
            for _ in range(50):
                telemetry.track_stream(sid, "chunk")
            telemetry.track_end(sid, "completed")

    tracker = threading.Thread(target=track, daemon=True)
    tracker.start()
    children: list[int] = []
    try:
        for n in range(20):
            pid = os.fork()
            if pid == 0:  # the child tracks its own session and flushes it
                code = 1
                try:
                    telemetry.track_start("codex", "code", f"child {n}")
                    # 20 children and the parent's tracker share one SQLite file: under a loaded CI
                    # machine a child may wait its turn for the write lock for a long while.
                    code = 0 if telemetry.flush(60) else 3
                    if code:  # say why in the test output: a timeout, or a loss and its reason
                        print(f"child {n}: flush False; dropped {telemetry.get_health_status()['dropped']}",
                              file=sys.stderr, flush=True)
                    telemetry.shutdown()
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            children.append(pid)
            stop.wait(0.01)  # let the tracker run between forks
    finally:
        stop.set()
        tracker.join()
    codes = _wait_all(children, 150)
    try:
        assert sorted(codes.values()) == [0] * len(children), f"{len(children) - len(codes)} children hung"
        # The tracker thread may have outrun the queue (drops are counted, and flush() then says so);
        # nothing else may have been lost.
        telemetry.flush(10)
        dropped = telemetry.get_health_status()["dropped"]
        assert all(count == 0 for reason, count in dropped.items() if reason != "queue_full"), dropped
        assert len(telemetry.get_sessions(category="codex")) == 20
    finally:
        telemetry.shutdown()
