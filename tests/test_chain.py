"""The one processor chain: every entry point, the same rows; your own steps; what listeners see."""

from __future__ import annotations

import atexit
import os
import sqlite3
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from vibekit_telemetry import Telemetry, TelemetryEvent, ValidationError
from vibekit_telemetry.processing import BatchValidationError, DropNotice

MakeTelemetry = Callable[..., Telemetry]
T0 = 1_760_000_000_000


def _events() -> list[dict[str, Any]]:
    """A session as the seeds write it: camelCase, VibeKit names, stream without category."""
    return [
        {"eventType": "start", "sessionId": "same-1", "agentType": "claude", "mode": "code", "prompt": "Fix it",
         "timestamp": T0, "eventId": "e-start", "metadata": {"model": "sonnet"}, "repoUrl": "https://x/y"},
        {"event_type": "stream", "session_id": "same-1", "stream_data": "chunk é ✓", "timestamp": T0 + 1,
         "event_id": "e-stream"},
        {"type": "error", "session_id": "same-1", "error": "boom", "timestamp": T0 + 2, "id": "e-error"},
        {"event_type": "end", "session_id": "same-1", "status": "success", "timestamp": T0 + 3,
         "event_id": "e-end", "duration": 3},
    ]


def _rows(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT * FROM events ORDER BY event_id").fetchall()
        sessions = conn.execute("SELECT * FROM sessions ORDER BY id").fetchall()
    return events, sessions


def test_track_track_batch_and_http_ingest_store_identical_rows(tmp_path: Path) -> None:
    options = {"service_name": "svc", "service_version": "1.2.3", "context": {"environment": "ci"},
               "stream_flush_interval_ms": 20}
    via_track = Telemetry(db_path=str(tmp_path / "track.db"), **options)
    for event in _events():
        assert via_track.track(event)
    assert via_track.flush(10)
    via_track.shutdown()

    via_batch = Telemetry(db_path=str(tmp_path / "batch.db"), **options)
    assert via_batch.track_batch(_events()) == 4
    assert via_batch.flush(10)
    via_batch.shutdown()

    via_http = Telemetry(db_path=str(tmp_path / "http.db"), **options)
    server = via_http.start_api_server(port=0)
    try:
        response = httpx.post(server.url + "/api/events", json=_events())
        assert response.status_code == 200, response.text
    finally:
        server.stop()
        via_http.shutdown()

    reference = _rows(tmp_path / "track.db")
    assert len(reference[0]) == 4 and len(reference[1]) == 1
    assert _rows(tmp_path / "batch.db") == reference
    assert _rows(tmp_path / "http.db") == reference
    # And the chain did its work once: aliases folded, session context and service fields filled.
    stream = next(row for row in reference[0] if row[0] == "e-stream")
    assert stream[3:5] == ("claude", "code")  # category and action from the session's start


class DropSecrets:
    """A user's step: drops events whose label mentions a secret."""

    name = "drop-secrets"

    def process(self, event: TelemetryEvent) -> TelemetryEvent | None:
        return None if event.label and "secret" in event.label else event


class Tag:
    """A user's step: tags every event's metadata."""

    name = "tag"

    def process(self, event: TelemetryEvent) -> TelemetryEvent:
        event.metadata = {**(event.metadata or {}), "tagged": True}
        return event


def test_user_processors_run_in_order_and_their_drops_are_counted_by_name(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(processors=[DropSecrets()])
    telemetry.add_processor(Tag(), before="redact")
    runtime = telemetry.runtime
    assert runtime is not None
    assert runtime.chain.names == ["normalise", "validate", "enrich", "sample", "tag", "redact", "drop-secrets",
                                   "truncate", "encode"]
    dropped: list[Any] = []
    telemetry.on("dropped", dropped.append)
    telemetry.track({"event_type": "custom", "category": "c", "label": "a secret"})
    telemetry.track({"event_type": "custom", "category": "c", "label": "public"})
    assert telemetry.flush(10)  # a processor's choice is not a loss
    (kept,) = telemetry.query(category="c")
    assert kept.label == "public" and kept.metadata == {"tagged": True}
    health = telemetry.get_health_status()
    assert health["chain"]["dropped"] == {"drop-secrets": 1} and health["dropped_total"] == 0
    assert len(dropped) == 1 and isinstance(dropped[0], DropNotice)
    assert dropped[0].processor == "drop-secrets" and not hasattr(dropped[0], "label")


def test_add_processor_names_a_bad_anchor(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    with pytest.raises(ValidationError) as info:
        telemetry.add_processor(Tag(), before="nowhere")
    assert info.value.field == "before" and "redact" in str(info.value)
    with pytest.raises(ValidationError):
        telemetry.add_processor(Tag(), before="normalise")
    with pytest.raises(ValidationError) as info:
        telemetry.add_processor(object())  # type: ignore[arg-type]
    assert info.value.field == "processor"


def test_strict_and_lenient_mode_refuse_the_same_events_with_the_same_words(make_telemetry: MakeTelemetry) -> None:
    bad = {"event_type": "custom", "category": "c", "label": "surr\ud800bad"}
    strict = make_telemetry(raise_on_error=True)
    with pytest.raises(ValidationError) as info:
        strict.track(bad)
    assert info.value.field == "label" and "surrogate" in str(info.value)
    lenient = make_telemetry(db_path=str(Path.cwd() / "lenient.db"))
    errors: list[tuple[Any, Any]] = []
    lenient.on("error", lambda exc, notice: errors.append((exc, notice)))
    assert lenient.track(bad)  # queued; the chain refuses it on the writer
    assert not lenient.flush(10)  # and flush says something was lost
    assert str(errors[0][0]) == str(info.value)
    assert isinstance(errors[0][1], DropNotice) and errors[0][1].processor == "validate"
    assert lenient.query() == []


def test_a_batch_is_all_or_nothing_in_strict_mode(make_telemetry: MakeTelemetry) -> None:
    strict = make_telemetry(raise_on_error=True)
    batch = [{"event_type": "custom", "category": "ok"},
             {"event_type": "custom", "category": "c", "metadata": {"k": "x\udfffy"}},
             {"event_type": "custom", "category": "c", "event_id": ""}]
    with pytest.raises(BatchValidationError) as info:
        strict.track_batch(batch)
    assert [(i, e.field) for i, e in info.value.errors] == [(1, "metadata"), (2, "event_id")]
    assert info.value.field == "events[1].metadata"
    strict.flush(10)
    assert strict.query() == []


def test_http_batch_with_a_lone_surrogate_stores_nothing(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    server = telemetry.start_api_server(port=0)
    try:
        body = '[{"event_type":"custom","category":"good"},{"event_type":"custom","category":"surr\\ud800bad"}]'
        response = httpx.post(server.url + "/api/events", content=body,
                              headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json()["details"][0]["field"] == "events[1].category"
        assert telemetry.flush(10) and telemetry.query() == []
    finally:
        server.stop()


def test_track_start_that_is_refused_returns_no_session_id(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    assert telemetry.track_start(1, 2, 3) == ""  # type: ignore[arg-type]
    sid = telemetry.track_start("claude", "code", "ok")
    assert sid and telemetry.flush(10) is False  # the refused start was counted as lost
    assert telemetry.flush(10) is True  # nothing lost since


def test_seed_keyword_calls(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    sid = telemetry.track_start(session_id="kw-1", agent_type="claude", mode="chat", prompt="hi",
                                sandbox_id="sb", repo_url="https://r")
    assert sid == "kw-1"
    assert telemetry.track_stream(session_id=sid, event_type="stream", category="claude", action="chat",
                                  stream_data="hello", metadata={"n": 1})
    assert telemetry.track_stream(sessionId=sid, streamData="camel")
    assert telemetry.track_error(session_id=sid, error="oops", agent_type="claude")
    assert telemetry.track_end(session_id=sid, agent_type="claude", metadata={"status": "success"})
    assert telemetry.flush(10)
    session = telemetry.get_session(sid, with_events=True)
    assert session is not None and session.status == "completed" and session.sandbox_id == "sb"
    assert [e.event_type for e in session.events or []] == ["start", "stream", "stream", "error", "end"]
    assert not telemetry.track_stream(session_id=sid, event_type="end", stream_data="x")


def test_no_store_means_flush_is_false(make_telemetry: MakeTelemetry, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    telemetry = make_telemetry(db_path=str(blocker / "t.db"))
    telemetry.track({"event_type": "custom", "category": "c"})
    assert telemetry.flush(5) is False
    assert telemetry.get_health_status()["dropped"]["no_store"] == 1


def test_hooks_are_registered_once_per_process(tmp_path: Path) -> None:
    import psutil

    from vibekit_telemetry import lifecycle

    Telemetry(db_path=str(tmp_path / "warm.db")).shutdown()
    callbacks = atexit._ncallbacks()  # type: ignore[attr-defined]
    rss = psutil.Process().memory_info().rss
    for i in range(300):
        Telemetry(storage=[{"type": "memory"}], service_name=f"s{i}").shutdown()
    assert atexit._ncallbacks() == callbacks  # type: ignore[attr-defined]
    assert len(lifecycle._exit_flushed) <= 1
    assert psutil.Process().memory_info().rss - rss < 20 * 1024 * 1024


def test_sessions_from_50_threads_lose_only_what_was_counted(make_telemetry: MakeTelemetry) -> None:
    # A small queue that does not wait: drops are certain, and each must cost only itself.
    telemetry = make_telemetry(max_queue_size=500, backpressure="drop_newest")
    accepted = [0] * 50

    def worker(n: int) -> None:
        sid = telemetry.track_start("claude", "code", f"thread {n}", session_id=f"t{n}")
        assert sid == f"t{n}"  # a valid start keeps its id even when the queue drops it
        for i in range(1_998):
            accepted[n] += telemetry.track_stream(sid, f"chunk {i}")
        accepted[n] += telemetry.track_end(sid, "completed")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    telemetry.flush(60)
    health = telemetry.get_health_status()
    stored = health["events"]["written"]
    starts = {e.session_id for e in telemetry.query(event_type="start", limit=100)}
    # True from track means stored (a start's fate is in the store): nothing else goes missing.
    assert stored == sum(accepted) + len(starts), health
    assert stored + health["dropped_total"] == 50 * 2_000, health
    assert health["dropped"]["queue_full"] > 0  # the test proves something only if events were dropped
    assert health["dropped"]["invalid"] == 0  # a dropped start does not make its session's events invalid
    kept = [n for n in range(50) if accepted[n] or f"t{n}" in starts]
    assert kept
    for n in kept:  # every session with any stored event exists and counts them, even if its start was dropped
        session = telemetry.get_session(f"t{n}")
        expected = accepted[n] + (f"t{n}" in starts)
        assert session is not None and session.event_count == expected, (n, expected, session)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_tracks_never_hangs_the_child(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    stop = threading.Event()

    def busy() -> None:
        sid = telemetry.track_start("claude", "code", "busy")
        while not stop.is_set():
            telemetry.track_stream(sid, "x" * 90)

    thread = threading.Thread(target=busy)
    thread.start()
    children = []
    try:
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                try:
                    sid = telemetry.track_start("claude", "code", "child")
                    telemetry.track_end(sid, "completed")
                    # 20 children and the parent's busy thread share one SQLite file: on a loaded CI
                    # machine a child may wait its turn for the write lock a long while (not a hang).
                    if telemetry.flush(60):
                        os._exit(0)
                    print(f"child: flush False; dropped {telemetry.get_health_status()['dropped']}",
                          file=sys.stderr, flush=True)
                    os._exit(3)
                except BaseException:
                    traceback.print_exc()
                    os._exit(4)
            children.append(pid)
    finally:
        stop.set()
        thread.join()
    codes = []
    for pid in children:
        deadline = 150.0  # a hang guard, not a timing
        while deadline > 0:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes.append(os.waitstatus_to_exitcode(status))
                break
            threading.Event().wait(0.05)
            deadline -= 0.05
        else:
            os.kill(pid, 9)
            codes.append("hung")
    assert codes == [0] * 20


def test_the_queue_bound_counts_the_events_of_a_batch(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry(max_queue_size=100, backpressure="drop_newest")
    assert telemetry.track_batch([{"event_type": "custom", "category": "big"}] * 150) == 0  # never fits
    assert telemetry.track_batch([{"event_type": "custom", "category": "ok"}] * 60) == 60
    assert not telemetry.flush(10)  # the refused batch was lost, and flush says so
    health = telemetry.get_health_status()
    assert health["dropped"]["queue_full"] == 150 and health["events"]["written"] == 60
