"""writer_process: commits made by a child process of the store's own, on a real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import running, wait_gone
from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import RefusedRowError, TransientStoreError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.query import QueryFilter
from vibekit_telemetry.store.sql import SQLStore

KEY = "ab" * 32


def _count(db: Path, sql: str = "SELECT count(*) FROM events") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_a_child_commits_what_the_sdk_tracks_and_exits_with_it(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Telemetry(db_path=str(db), writer_process=True)
    pid = t.runtime.writer_pid if t.runtime else None
    assert pid is not None and pid != os.getpid() and running(pid)
    sid = t.track_start(category="claude", action="code", label="find the needle")
    for i in range(500):
        t.track_stream(session_id=sid, stream_data=f"chunk {i}")
    t.track_end(session_id=sid, metadata={"status": "success"})
    assert t.flush()
    session = t.get_session(sid)
    assert session is not None and session.event_count == 502 and session.status == "completed"
    health = t.get_health_status()
    assert health["writer"]["process"] == {"pid": pid, "restarts": 0}
    assert health["events"]["written"] == 502
    # The text index is kept up by this process, for rows the child wrote.
    assert [e.event_type for e in t.query(contains="needle")] == ["start"]
    t.shutdown()
    assert wait_gone(pid), "the writer process outlived shutdown()"
    assert _count(db) == 502


def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Telemetry(db_path=str(db), writer_process=True)
    assert t.runtime is not None and t.runtime.writer_pid is not None
    first = t.runtime.writer_pid
    sid = t.track_start(category="claude")
    for i in range(200):
        t.track_stream(session_id=sid, stream_data=f"before {i}")
    assert t.flush()
    os.kill(first, signal.SIGKILL)
    assert wait_gone(first)
    for i in range(300):
        t.track_stream(session_id=sid, stream_data=f"after {i}")
    assert t.flush(30)
    health = t.get_health_status()
    assert health["writer"]["process"]["restarts"] == 1
    assert health["writer"]["process"]["pid"] not in (None, first)
    assert health["dropped_total"] == 0
    t.shutdown()
    assert _count(db) == 501
    assert _count(db, "SELECT count(DISTINCT event_id) FROM events") == 501


def test_a_hung_writer_process_is_killed_and_replaced(tmp_path: Path) -> None:
    # SIGSTOP stands for a child stuck for good (a hung disk, a debugger): without a deadline the writer
    # thread would wait on it for ever and ingest would stall.
    db = tmp_path / "t.db"
    store = SQLStore(str(db))
    first = store.use_writer_process(answer_timeout_s=1.5)
    store.store_batch([TelemetryEvent(event_type="custom", category="c", event_id=f"before-{i}") for i in range(10)])
    os.kill(first, signal.SIGSTOP)
    batch = [TelemetryEvent(event_type="custom", category="c", event_id=f"after-{i}") for i in range(10)]
    started = time.monotonic()
    with pytest.raises(TransientStoreError, match="hung"):
        store.store_batch(batch)
    assert time.monotonic() - started < 10
    assert wait_gone(first), "the hung child was not killed"
    assert store.store_batch(batch).stored == 10  # the retry goes to a new child
    remote = store.writer_process
    assert remote is not None and remote.restarts == 1 and remote.pid not in (None, first)
    store.shutdown()
    assert _count(db) == 20


def test_the_sdk_loses_nothing_when_its_writer_process_hangs(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Telemetry(db_path=str(db), writer_process=True)
    remote = t.runtime.store.writer_process if t.runtime else None
    assert remote is not None and remote.pid is not None
    remote.answer_timeout_s = 1.5
    first = remote.pid
    sid = t.track_start(category="claude")
    assert t.flush()
    os.kill(first, signal.SIGSTOP)
    for i in range(300):
        t.track_stream(session_id=sid, stream_data=f"chunk {i}")
    assert t.flush(30)
    assert wait_gone(first)
    health = t.get_health_status()
    assert health["writer"]["process"]["restarts"] == 1
    assert health["dropped_total"] == 0
    t.shutdown()
    assert _count(db) == 301
    assert _count(db, "SELECT count(DISTINCT event_id) FROM events") == 301


def test_a_row_the_store_refuses_is_a_typed_error_from_the_child(tmp_path: Path) -> None:
    # The chain never lets such a value through; the store must still say which kind of error it is, so the
    # write pipeline bisects the batch instead of retrying it for ever.
    store = SQLStore(tmp_path / "t.db")
    store.initialize()
    store.use_writer_process()
    try:
        bad = TelemetryEvent("custom", "c", event_id="bad", timestamp=1_700_000_000_000, value=2 ** 70)
        good = TelemetryEvent("custom", "c", event_id="good", timestamp=1_700_000_000_000, value=1.0)
        with pytest.raises(RefusedRowError):
            store.store_batch([bad])
        result = store.store_batch([good])
        assert (result.stored, result.duplicates, result.rejected) == (1, 0, [])
        again = store.store_batch([good])
        assert (again.stored, again.duplicates) == (0, 1)
        assert [e.event_id for e in store.query(QueryFilter())] == ["good"]
    finally:
        store.shutdown()


def test_the_sdk_drops_only_the_refused_event_through_the_child(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Telemetry(db_path=str(db), writer_process=True)
    assert t.runtime is not None
    ok = [TelemetryEvent("custom", "c", event_id=f"ok{i}", timestamp=1_700_000_000_000 + i) for i in range(3)]
    bad = TelemetryEvent("custom", "c", event_id="bad", timestamp=1_700_000_000_000, value=2 ** 70)
    outcome = t.runtime.pipeline.process([ok[0], bad, ok[1], ok[2]])  # past the chain, as a plugin could
    assert outcome.committed and outcome.refused_ids == {"bad"}
    t.shutdown()
    assert _count(db) == 3


def test_encryption_happens_before_the_batch_leaves_the_process(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    secret = "swordfish-4417"
    t = Telemetry(db_path=str(db), writer_process=True, security={"encryption": {"enabled": True, "key": KEY}})
    sid = t.track_start(category="claude", label=secret, metadata={"note": secret})
    t.track_stream(session_id=sid, stream_data=secret)
    assert t.flush()
    events = t.query(session_id=sid)
    t.shutdown()
    assert {e.label for e in events if e.event_type == "start"} == {secret}
    assert {e.stream_data for e in events if e.event_type == "stream"} == {secret}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT label, stream_data, metadata FROM events").fetchall()
    assert rows and not any(secret in (v or "") for row in rows for v in row)


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = ("import sys, time\nfrom vibekit_telemetry import Telemetry\n"
              "t = Telemetry(db_path=sys.argv[1], writer_process=True)\n"
              "print(t.runtime.writer_pid, flush=True)\n"
              "for i in range(10**9):\n"
              "    t.track({'event_type': 'custom', 'category': 'c', 'action': f'a{i}'})\n"
              "    time.sleep(0.001)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "t.db")], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.5)  # a few commits under way
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    assert wait_gone(child), "the writer process was left running after its parent died"
    assert _count(tmp_path / "t.db") > 0


def test_without_a_python_to_start_the_store_commits_in_process(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    # e.g. an embedded interpreter whose sys.executable is not Python: never fail the host over the option.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    t = Telemetry(db_path=str(tmp_path / "t.db"), writer_process=True)
    assert t.runtime is not None and t.runtime.writer_pid is None
    assert "could not start the writer process" in caplog.text
    t.track({"event_type": "custom", "category": "c", "action": "still stored"})
    assert t.flush()
    assert t.get_health_status()["writer"]["process"] is None
    t.shutdown()
    assert _count(tmp_path / "t.db") == 1


def test_the_option_is_refused_clearly_when_not_a_boolean(tmp_path: Path) -> None:
    from vibekit_telemetry.errors import ValidationError

    with pytest.raises(ValidationError, match="writer_process"):
        Telemetry(db_path=str(tmp_path / "t.db"), writer_process="sometimes")


def test_a_store_other_than_sql_ignores_the_option() -> None:
    t = Telemetry(storage=[{"type": "memory"}], writer_process=True)
    assert t.runtime is not None and t.runtime.writer_pid is None
    t.track({"event_type": "custom", "category": "c", "action": "x"})
    assert t.flush()
    assert t.get_health_status()["writer"]["process"] is None
    t.shutdown()


def test_postgresql_commits_through_a_writer_process_too(pg_url: str) -> None:
    t = Telemetry(database_url=pg_url, writer_process=True)
    assert t.runtime is not None and t.runtime.writer_pid is not None
    sid = t.track_start(category="claude", action="code")
    for i in range(300):
        t.track_stream(session_id=sid, stream_data=f"chunk {i}")
    assert t.flush()
    os.kill(t.runtime.writer_pid, signal.SIGKILL)
    t.track_end(session_id=sid, metadata={"status": "success"})
    assert t.flush(30)
    session = t.get_session(sid)
    health = t.get_health_status()
    t.shutdown()
    assert session is not None and session.event_count == 302 and session.status == "completed"
    assert health["writer"]["process"]["restarts"] == 1


def test_a_forked_child_starts_a_writer_process_of_its_own(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    t = Telemetry(db_path=str(db), writer_process=True)
    assert t.runtime is not None
    parent_writer = t.runtime.writer_pid
    sid = t.track_start(category="parent")
    assert t.flush()
    pid = os.fork()
    if pid == 0:  # the child: track, flush through a writer of its own, leave without atexit hooks
        code = 1
        try:
            child_sid = t.track_start(category="child", session_id="from-the-child")
            for i in range(100):
                t.track_stream(session_id=child_sid, stream_data=f"child {i}")
            ok = t.flush(30)
            own = t.runtime.writer_pid if t.runtime else None
            code = 0 if ok and own not in (None, parent_writer) else 2
            t.shutdown()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for i in range(100):
        t.track_stream(session_id=sid, stream_data=f"parent {i}")
    assert t.flush()
    assert t.runtime.writer_pid == parent_writer and running(parent_writer)
    t.shutdown()
    assert _count(db) == 1 + 100 + 1 + 100
