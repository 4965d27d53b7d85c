"""The Telemetry facade end to end, on a real SQLite file and on the memory store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import (
    EventBuilder,
    StoreError,
    Telemetry,
    TelemetryEvent,
    TelemetryService,
    ValidationError,
)
from vibekit_telemetry.store.base import BaseStorageProvider, BatchResult

MakeTelemetry = Callable[..., Telemetry]


@pytest.fixture(params=["sqlite", "memory"])
def telemetry(request: pytest.FixtureRequest, make_telemetry: MakeTelemetry) -> Telemetry:
    if request.param == "memory":
        return make_telemetry(storage=[{"type": "memory"}])
    return make_telemetry()


def test_issue_example(telemetry: Telemetry) -> None:
    sid = telemetry.track_start("claude", "code", "Fix this bug", metadata={"model": "claude-3-sonnet"})
    telemetry.track_stream(sid, "Here's the fix…")
    telemetry.track_end(sid, "completed")
    with telemetry.session("codex", mode="chat", prompt="hi") as s:
        s.stream("chunk")
    assert telemetry.flush(10)
    streams = telemetry.query(category="claude", event_type="stream", since="1h", limit=100)
    assert [e.stream_data for e in streams] == ["Here's the fix…"]
    session = telemetry.get_session(sid)
    assert session is not None and session.status == "completed"
    assert session.event_count == 3 and session.stream_count == 1 and session.category == "claude"
    assert session.label == "Fix this bug" and session.metadata == {"model": "claude-3-sonnet"}
    assert session.duration is not None and session.duration >= 0
    codex = telemetry.get_sessions(category="codex")
    assert [c.id for c in codex] == [s.id] and codex[0].status == "completed"
    assert telemetry.get_sessions(status="active") == []
    stats = telemetry.get_stats(group_by="category")
    assert stats.total_events == 6 and stats.total_sessions == 2
    assert stats.agents == {"claude": 3, "codex": 3}
    assert {g.key: g.events for g in stats.groups} == {"claude": 3, "codex": 3}


def test_session_context_ends_with_error_on_exception(telemetry: Telemetry) -> None:
    with pytest.raises(RuntimeError), telemetry.session("gemini", "code", "p") as s:
        s.stream("partial")
        raise RuntimeError("model overloaded")
    telemetry.flush(10)
    session = telemetry.get_session(s.id, with_events=True)
    assert session is not None and session.status == "error" and session.error_count == 1
    assert session.events is not None
    assert [e.event_type for e in session.events] == ["start", "stream", "error", "end"]
    assert session.events[2].label == "RuntimeError: model overloaded"


def test_async_session_context(telemetry: Telemetry) -> None:
    async def agent() -> str:
        async with telemetry.session("claude", "chat", "hi") as s:
            s.stream("a")
            await asyncio.sleep(0)
            s.stream("b")
        return s.id

    sid = asyncio.run(agent())
    telemetry.flush(10)
    session = telemetry.get_session(sid)
    assert session is not None and session.stream_count == 2 and session.status == "completed"


def test_calling_styles(telemetry: Telemetry) -> None:
    # Seed 003 object style with camelCase names.
    telemetry.track_start({"sessionId": "obj-1", "agentType": "claude", "mode": "chat", "prompt": "Hello"})
    telemetry.track_stream({"sessionId": "obj-1", "agentType": "claude", "streamData": "hey"})
    telemetry.track_end({"sessionId": "obj-1", "agentType": "claude", "metadata": {"status": "success"}})
    # Legacy positional style.
    telemetry.track_start("legacy-1", "codex", "code", "Hello", "sandbox-789", "https://github.com/u/r",
                          {"userId": "user-456"})
    telemetry.track_end("legacy-1", "codex", "code", "Hello", "sandbox-789", "https://github.com/u/r", {})
    telemetry.flush(10)
    obj = telemetry.get_session("obj-1")
    assert obj is not None and obj.status == "completed" and obj.stream_count == 1
    legacy = telemetry.get_session("legacy-1")
    assert legacy is not None and legacy.category == "codex" and legacy.sandbox_id == "sandbox-789"
    assert legacy.repo_url == "https://github.com/u/r" and legacy.status == "completed"


def test_event_builder_and_custom_events(telemetry: Telemetry) -> None:
    event = (EventBuilder().with_category("user-action").with_action("button-click").with_label("submit-form")
             .with_value(1).with_metadata({"formId": "prefs"}).build())
    assert telemetry.track(event)
    assert telemetry.track({"eventType": "custom", "category": "metrics", "action": "token_usage",
                            "value": 1500})
    telemetry.flush(10)
    events = telemetry.query(event_type="custom", order="asc")
    assert [(e.category, e.action, e.value) for e in events] == [("user-action", "button-click", 1),
                                                                 ("metrics", "token_usage", 1500)]
    assert events[0].metadata == {"formId": "prefs"}
    assert events[0].event_id is not None and events[0].service_name == "vibekit-telemetry"


def test_query_filters_end_to_end(telemetry: Telemetry) -> None:
    base = int(time.time() * 1000) - 10_000
    sid = telemetry.track_start("claude", "code", "search me", metadata={"team": "red"}, timestamp=base)
    for i in range(5):
        telemetry.track_stream(sid, f"chunk number {i} with needle{i}", timestamp=base + i + 1)
    other = telemetry.track_start("codex", "chat", "other", metadata={"team": "blue"}, timestamp=base + 10)
    telemetry.flush(10)
    assert len(telemetry.query(session_id=sid)) == 6
    assert [e.stream_data for e in telemetry.query(contains="needle3")] == ["chunk number 3 with needle3"]
    assert [e.session_id for e in telemetry.query(metadata={"team": "blue"})] == [other]
    page = telemetry.query(session_id=sid, event_type="stream", limit=2, offset=1, order="asc")
    assert [e.stream_data for e in page] == ["chunk number 1 with needle1", "chunk number 2 with needle2"]
    newest = telemetry.query(limit=1, order="desc")
    assert newest[0].session_id == other
    assert telemetry.query(since=base + 3, until=base + 4, event_type="stream")[0].stream_data.startswith(
        "chunk number 2")


def test_duplicate_event_id_stored_once(telemetry: Telemetry) -> None:
    event = {"event_id": "0190a000-0000-7000-8000-000000000001", "event_type": "custom", "category": "x"}
    telemetry.track(event)
    telemetry.flush(10)
    telemetry.track(event)
    telemetry.flush(10)
    assert len(telemetry.query(event_type="custom")) == 1
    assert telemetry.get_health_status()["events"]["duplicates"] == 1


@pytest.mark.parametrize(("bad", "field"), [
    ({"event_type": "bogus", "category": "x"}, "event_type"),
    ({"event_type": "custom"}, "category"),
    ({"event_type": "custom", "category": "x", "metadata": {"when": object()}}, "metadata.when"),
    ({"event_type": "custom", "category": "x", "value": math.nan}, "value"),
    ({"event_type": "custom", "category": "x", "metadata": {"v": math.inf}}, "metadata.v"),
    ({"event_type": "custom", "category": "x", "timestamp": 1_700_000_000}, "timestamp"),
])
def test_bad_input_raises_in_strict_mode_and_stores_nothing(make_telemetry: MakeTelemetry,
                                                            bad: dict[str, Any], field: str) -> None:
    telemetry = make_telemetry(raise_on_error=True)
    with pytest.raises(ValidationError) as info:
        telemetry.track(bad)
    assert info.value.field == field
    telemetry.flush(10)
    assert telemetry.query() == []


@pytest.mark.parametrize("bad", [
    {"event_type": "bogus", "category": "x"},
    {"event_type": "custom", "category": "x", "metadata": {"when": object()}},
    {"event_type": "custom", "category": "x", "value": math.inf},
])
def test_bad_input_is_logged_and_counted_by_default(make_telemetry: MakeTelemetry, bad: dict[str, Any],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry()
    errors: list[Any] = []
    telemetry.on("error", lambda exc, event: errors.append(exc))
    assert telemetry.track({"event_type": "custom", "category": "ok"})
    telemetry.track(bad)  # must not raise into the application
    telemetry.flush(10)
    assert [e.category for e in telemetry.query()] == ["ok"]
    health = telemetry.get_health_status()
    assert health["dropped"]["invalid"] == 1 and health["status"] == "degraded"
    assert "telemetry event dropped" in caplog.text
    assert len(errors) == 1


def test_long_strings_are_truncated_and_flagged(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(max_field_length=100)
    sid = telemetry.track_start("claude", "code", "p")
    telemetry.track_stream(sid, "y" * 1000)
    telemetry.flush(10)
    [chunk] = telemetry.query(event_type="stream")
    assert chunk.stream_data == "y" * 100
    assert chunk.metadata == {"_truncated": ["stream_data"]}
    assert telemetry.get_health_status()["events"]["truncated"] == 1


def test_end_of_unknown_session_is_stored_not_rejected(make_telemetry: MakeTelemetry) -> None:
    # A session whose start was lost (dropped, another process, a crash) still gets its end: one lost
    # event costs one event, not the rest of the session.
    for options in ({"raise_on_error": True}, {}):
        telemetry = make_telemetry(**options)
        assert telemetry.track_end("never-started", "completed")
        assert telemetry.flush(10)
        session = telemetry.get_session("never-started")
        assert session is not None and session.status == "completed" and session.category == "unknown"
        assert [e.event_type for e in telemetry.query()] == ["end"]
        assert telemetry.get_health_status()["dropped_total"] == 0
        telemetry.clean(session_ids=["never-started"])
        telemetry.shutdown()


def test_end_of_session_started_by_another_process(make_telemetry: MakeTelemetry) -> None:
    first = make_telemetry()
    sid = first.track_start("claude", "code", "p")
    first.shutdown()
    second = make_telemetry(raise_on_error=True)
    assert second.track_end(sid, "error")
    second.flush(10)
    session = second.get_session(sid)
    assert session is not None and session.status == "error"


def test_bad_status_and_bad_session_id(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(raise_on_error=True)
    sid = telemetry.track_start("claude", "code", "p")
    with pytest.raises(ValidationError) as info:
        telemetry.track_end(sid, "exploded")
    assert info.value.field == "status"
    with pytest.raises(ValidationError) as info:
        telemetry.track_stream(42, "x")  # type: ignore[arg-type]
    assert info.value.field == "session_id"


def test_disabled_by_env_is_a_no_op(monkeypatch: pytest.MonkeyPatch, db_path: Path) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    telemetry = Telemetry(db_path=str(db_path))
    sid = telemetry.track_start("claude", "code", "p")
    assert isinstance(sid, str)
    assert telemetry.track_stream(sid, "x") is False
    assert telemetry.get_health_status()["status"] == "disabled"
    telemetry.shutdown()
    assert not db_path.exists()


def test_events_emitted(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    tracked: list[TelemetryEvent] = []
    flushes: list[dict[str, int]] = []
    shutdowns: list[bool] = []
    telemetry.on("event:tracked", tracked.append)
    telemetry.on("flush", flushes.append)
    telemetry.on("shutdown", lambda: shutdowns.append(True))
    sid = telemetry.track_start("claude", "code", "p")
    telemetry.flush(10)
    assert [e.session_id for e in tracked] == [sid]
    assert sum(f["count"] for f in flushes) == 1
    telemetry.off("event:tracked", tracked.append)
    telemetry.track_stream(sid, "more")
    telemetry.flush(10)
    assert len(tracked) == 1
    telemetry.shutdown()
    assert shutdowns == [True]


def test_thread_safety(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()

    def agent(n: int) -> None:
        with telemetry.session(f"agent-{n % 3}", "code", "p") as s:
            for i in range(100):
                s.stream(f"{n}-{i}")

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    telemetry.flush(20)
    stats = telemetry.get_stats()
    assert stats.total_events == 8 * 102 and stats.total_sessions == 8
    assert all(s.stream_count == 100 for s in telemetry.get_sessions())


def test_clean_by_retention(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    old = int(time.time() * 1000) - 40 * 86_400_000
    sid_old = telemetry.track_start("claude", "code", "old", timestamp=old)
    telemetry.track_end(sid_old, "completed", timestamp=old + 1000)
    sid_new = telemetry.track_start("claude", "code", "new")
    telemetry.flush(10)
    assert telemetry.clean(30) == 2
    assert telemetry.get_session(sid_old) is None and telemetry.get_session(sid_new) is not None
    with pytest.raises(ValidationError):
        telemetry.clean(-1)


def test_custom_provider_fan_out(make_telemetry: MakeTelemetry) -> None:
    class Collect(BaseStorageProvider):
        def __init__(self) -> None:
            self.events: list[TelemetryEvent] = []

        def store_batch(self, events: Any) -> BatchResult:
            self.events.extend(events)
            return BatchResult(stored=len(events))

    extra = Collect()
    telemetry = make_telemetry(storage=[{"type": "sqlite", "options": {"path": "fan.db"}}, extra])
    sid = telemetry.track_start("claude", "code", "p")
    assert telemetry.flush(10)
    assert telemetry.get_session(sid) is not None  # committed to the primary
    # The second provider follows the primary on its own thread; shutdown gives it time to catch up.
    telemetry.shutdown()
    assert [e.session_id for e in extra.events] == [sid]


def test_service_alias() -> None:
    assert TelemetryService is Telemetry


def test_non_sqlite_file_gives_one_line_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-db.db"
    bogus.write_bytes(b"this is not sqlite" * 200)
    with pytest.raises(StoreError) as info:
        Telemetry(db_path=str(bogus), raise_on_error=True)
    assert "\n" not in str(info.value) and "not-a-db.db" in str(info.value)
    lenient = Telemetry(db_path=str(bogus))  # never crashes the host application
    assert lenient.track_start("claude", "code", "p")
    lenient.flush(10)
    health = lenient.get_health_status()
    assert health["status"] == "unhealthy" and "not-a-db.db" in (health["store_error"] or "")
    assert health["dropped"]["no_store"] == 1 and health["events"]["written"] == 0
    lenient.shutdown()


def test_locked_database_is_retried_not_lost(make_telemetry: MakeTelemetry, db_path: Path) -> None:
    telemetry = make_telemetry(storage=[{"type": "sqlite", "options": {"path": str(db_path),
                                                                      "busy_timeout_ms": 50}}],
                               retry_delay_ms=20)
    telemetry.track_start("claude", "code", "warm-up")
    telemetry.flush(10)
    # Another process takes the write lock for a while.
    locker = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(1.5); c.execute('COMMIT')\n")],
        stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    sids = [telemetry.track_start("claude", "code", f"during lock {i}") for i in range(20)]
    assert telemetry.flush(20)
    locker.wait(10)
    assert all(telemetry.get_session(sid) is not None for sid in sids)
    assert telemetry.get_health_status()["events"]["retries"] >= 1


def test_survives_fork(make_telemetry: MakeTelemetry, db_path: Path) -> None:
    telemetry = make_telemetry()
    parent_sid = telemetry.track_start("claude", "code", "parent")
    telemetry.flush(10)
    pid = os.fork()
    if pid == 0:
        try:
            sid = telemetry.track_start("claude", "code", "child")
            telemetry.track_end(sid, "completed")
            code = 0 if telemetry.flush(10) else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The child recorded its own writer run (new run id, its pid, only its own events).
    runs = {r["pid"]: r for r in telemetry.store.writer_runs()}  # type: ignore[attr-defined]
    assert runs[pid]["events_written"] == 2 and runs[os.getpid()]["events_written"] == 1
    assert runs[pid]["run_id"] != runs[os.getpid()]["run_id"]
    telemetry.track_end(parent_sid, "completed")
    telemetry.flush(10)
    labels = sorted(s.label or "" for s in telemetry.get_sessions())
    assert labels == ["child", "parent"]


def test_writer_records_its_metrics_at_most_every_interval_and_at_shutdown(make_telemetry: MakeTelemetry) -> None:
    slow = make_telemetry(storage=[{"type": "memory"}], writer_stats_interval_s=3600)
    store: Any = slow.store
    slow.track_start("claude", "code", "p")
    assert slow.flush(10)
    (first,) = store.writer_runs()  # the first batch records the run at once
    assert first["events_written"] == 1 and first["service_name"] == slow.config.service_name
    slow.track_batch([{"event_type": "custom", "category": "claude"}] * 5)
    assert slow.flush(10)
    assert store.writer_runs()[0]["events_written"] == 1  # within the interval: not recorded again
    slow.shutdown()
    (last,) = store.writer_runs()  # the memory store stays readable after shutdown
    assert last["run_id"] == first["run_id"] and last["events_written"] == 6 and last["batches"] == 2
    assert last["max_batch_ms"] > 0 and last["queue_capacity"] == 50_000


def test_reading_only_records_no_writer_run(make_telemetry: MakeTelemetry) -> None:
    reader = make_telemetry(storage=[{"type": "memory"}])
    store: Any = reader.store
    reader.get_stats()
    reader.shutdown()
    assert store.writer_runs() == []


def test_failing_metrics_record_never_reaches_the_writer(make_telemetry: MakeTelemetry,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    telemetry = make_telemetry(storage=[{"type": "memory"}], writer_stats_interval_s=0.1)
    store: Any = telemetry.store

    def broken(run: dict[str, Any]) -> None:
        raise RuntimeError("metrics table gone")

    store.record_writer_run = broken
    sid = telemetry.track_start("claude", "code", "p")
    assert telemetry.flush(10)
    telemetry.track_end(sid, "completed")
    assert telemetry.flush(10)
    health = telemetry.get_health_status()
    assert health["writer"]["metrics_record_errors"] >= 1 and health["writer"]["batch_errors"] == 0
    assert health["events"]["written"] == 2 and health["dropped_total"] == 0
    assert "metrics table gone" in caplog.text


def test_writer_stats_interval_is_validated() -> None:
    with pytest.raises(ValidationError):
        Telemetry(storage=[{"type": "memory"}], writer_stats_interval_s=0.01)


def test_flushes_at_interpreter_exit(db_path: Path) -> None:
    script = (
        "from vibekit_telemetry import Telemetry\n"
        f"t = Telemetry(db_path={str(db_path)!r}, stream_flush_interval_ms=60000)\n"
        "sid = t.track_start('claude', 'code', 'bye')\n"
        "for i in range(500): t.track_stream(sid, f'c{i}')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 501


def test_import_is_light() -> None:
    code = ("import sys, vibekit_telemetry\n"
            "heavy = [m for m in ('sqlalchemy', 'pydantic', 'fastapi', 'pyarrow', 'numpy', 'rich') "
            "if m in sys.modules]\n"
            "print(json.dumps(heavy))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_health_shape(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    health = telemetry.get_health_status()
    assert health["status"] == "healthy"
    assert health["queue"]["capacity"] == 50_000 and health["writer"]["alive"]
    assert health["stores"][0]["reachable"] is True


def test_seed_003_performance_and_health_helpers(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    telemetry.initialize()  # seed 001 code calls it; harmless
    sid = telemetry.track_start("claude", "code", "p")
    for i in range(10):
        telemetry.track_stream(sid, f"c{i}")
    assert telemetry.flush_buffers(10)
    metrics = telemetry.get_performance_metrics()
    assert metrics["total_events_written"] == 11 and metrics["total_buffered_events"] == 0
    assert metrics["flushes"] >= 1 and metrics["average_flush_time_ms"] > 0
    check = telemetry.health_check()
    assert check["database"] is True and check["buffer"] is True
    assert check["disk_space_mb"] is not None and check["disk_space_mb"] > 0


def test_health_check_reports_a_broken_database(tmp_path: Path) -> None:
    bogus = tmp_path / "broken.db"
    bogus.write_bytes(b"garbage" * 500)
    telemetry = Telemetry(db_path=str(bogus))
    assert telemetry.health_check()["database"] is False
    telemetry.shutdown()


@pytest.mark.parametrize(("call", "field"), [
    (lambda t: t.track_stream("s", "claude", "code"), "track_stream"),            # legacy form cut short
    (lambda t: t.track_error("s", 42), "error"),
    (lambda t: t.track_error("s", "claude", "code"), "track_error"),
    (lambda t: t.track_end({"sessionId": "s", "colour": "red"}), "colour"),
    (lambda t: t.track_end("s", "claude", "code", "p", None, None, "not-a-dict"), "metadata"),
    (lambda t: t.track_start("claude", "code", "p", metadata=["not", "a", "dict"]), "metadata"),
    (lambda t: t.track_stream("s", 12), "stream_data"),
])
def test_bad_calls_name_the_argument(make_telemetry: MakeTelemetry, call: Callable[[Telemetry], object],
                                     field: str) -> None:
    strict = make_telemetry(raise_on_error=True)
    strict.track_start("claude", "code", "p", session_id="s")
    with pytest.raises(ValidationError) as info:
        call(strict)
    assert info.value.field == field
    lenient = make_telemetry()
    call(lenient)  # logged and counted, never raised
    lenient.flush(10)
    assert lenient.get_health_status()["dropped"]["invalid"] == 1


def test_flush_keeps_to_its_timeout_while_another_process_locks_the_database(db_path: Path) -> None:
    # The writer waits busy_timeout_ms (5 s) per attempt for the other process's lock, holding the store's
    # lock meanwhile; flush(1) used to wait for that too before returning False.
    telemetry = Telemetry(db_path=str(db_path))
    try:
        sid = telemetry.track_start(category="claude")
        assert telemetry.flush()
        other = subprocess.Popen([sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(8)\n"
            "c.execute('ROLLBACK')\n"), str(db_path)], stdout=subprocess.PIPE, text=True)
        assert other.stdout is not None and other.stdout.readline().strip() == "locked"
        try:
            telemetry.track_stream(session_id=sid, stream_data="while locked")
            started = time.monotonic()
            assert not telemetry.flush(1)
            assert time.monotonic() - started < 2.5
        finally:
            other.wait(30)
        assert telemetry.flush(30)  # the lock is gone: the retried batch commits
        session = telemetry.get_session(sid)
        assert session is not None and session.event_count == 2
    finally:
        telemetry.shutdown()


def _vacuum_waiting(telemetry: Telemetry) -> threading.Thread:
    """Start a VACUUM (as `telemetry vacuum` or the size limit's prune runs it) that holds the store while it
    waits busy_timeout for another process's lock; return its thread once it holds the store."""
    store: Any = telemetry.store
    thread = threading.Thread(target=_quietly, args=(store.compact,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not _held_by_another(store._lock):
        assert time.monotonic() < deadline, "the VACUUM never took the store's lock"
        time.sleep(0.01)
    return thread


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the VACUUM fails with "database is locked" after busy_timeout
        call()


def _held_by_another(lock: Any) -> bool:
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def test_flush_keeps_to_its_timeout_when_committed_rows_wait_for_a_locked_database(db_path: Path) -> None:
    # Everything is committed, but flush() also brings the text index up to date, and another process
    # holds the database: its steps (and the scheduler's, which hold the store meanwhile) wait
    # busy_timeout (5 s) for it. flush(1) used to take that long; now it gives up in its time.
    telemetry = Telemetry(db_path=str(db_path))
    try:
        sid = telemetry.track_start(category="claude")
        for i in range(200):
            telemetry.track_stream(session_id=sid, stream_data=f"chunk {i}")
        runtime = telemetry.runtime
        assert runtime is not None and runtime.worker.flush(10)  # committed, not yet indexed
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            assert telemetry.store.unindexed_rows() > 0  # type: ignore[attr-defined]
            started = time.monotonic()
            assert not telemetry.flush(1)
            assert time.monotonic() - started < 2.5
            # Again with maintenance (a VACUUM) holding the store while it waits for the same lock.
            vacuum = _vacuum_waiting(telemetry)
            started = time.monotonic()
            assert not telemetry.flush(1)
            assert time.monotonic() - started < 2.5
        finally:
            other.execute("ROLLBACK")
            other.close()
        vacuum.join(10)
        assert telemetry.flush(30)
        assert telemetry.store.unindexed_rows() == 0  # type: ignore[attr-defined]
        assert len(telemetry.query(session_id=sid, contains="chunk 19")) == 11
    finally:
        telemetry.shutdown()


def test_shutdown_keeps_to_its_timeout_while_the_scheduler_waits_on_a_locked_database(db_path: Path) -> None:
    # The scheduler's text-index step waits busy_timeout (5 s) for another process's lock, holding the
    # store meanwhile; shutdown(1) used to wait for it to close the store. Nothing committed is lost.
    telemetry = Telemetry(db_path=str(db_path))
    sid = telemetry.track_start(category="claude")
    for i in range(200):
        telemetry.track_stream(session_id=sid, stream_data=f"chunk {i}")
    runtime = telemetry.runtime
    assert runtime is not None and runtime.worker.flush(10)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        vacuum = _vacuum_waiting(telemetry)
        started = time.monotonic()
        assert telemetry.shutdown(timeout=1) is False
        assert time.monotonic() - started < 2.5
    finally:
        other.execute("ROLLBACK")
        other.close()
    vacuum.join(10)
    reopened = Telemetry(db_path=str(db_path))
    try:
        session = reopened.get_session(sid)
        assert session is not None and session.event_count == 201
    finally:
        reopened.shutdown()
