"""The chain's `sample` step: whole sessions kept or dropped, errors kept, the kept fraction reported."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.processing.sampling import Sample, session_score

SESSIONS = 10_000
RATE = 0.25


def _stored(db_path: Path) -> Counter[str]:
    with sqlite3.connect(db_path) as conn:
        return Counter(dict(conn.execute("SELECT session_id, count(*) FROM events GROUP BY session_id")))


def test_ten_thousand_sessions_sampled_whole_with_errors_kept(make_telemetry: Callable[..., Telemetry],
                                                               db_path: Path) -> None:
    telemetry = make_telemetry(sample_rate=RATE, keep_errors=True, max_queue_size=200_000)
    sent: dict[str, int] = {}
    failed: set[str] = set()
    for i in range(SESSIONS):
        sid = telemetry.track_start("claude", "code", f"task {i}")
        telemetry.track_stream(sid, "chunk one")
        if i % 10 == 0:  # one session in ten fails half way
            telemetry.track_error(sid, "boom")
            failed.add(sid)
        telemetry.track_stream(sid, "chunk two")
        telemetry.track_end(sid, "error" if sid in failed else "completed")
        sent[sid] = 5 if sid in failed else 4
    assert telemetry.flush(120)
    stored = _stored(db_path)

    # Every failing session is kept, whole, whatever its sampling score.
    assert failed <= stored.keys()
    assert all(stored[sid] == sent[sid] for sid in failed)
    # Every kept session is complete: no session is stored in part.
    assert all(stored[sid] == sent[sid] for sid in stored)
    # Sessions kept by the rate alone: a binomial draw, within 5 standard deviations of RATE.
    clean = [sid for sid in sent if sid not in failed]
    kept_clean = sum(1 for sid in clean if sid in stored)
    sd = math.sqrt(len(clean) * RATE * (1 - RATE))
    assert abs(kept_clean - len(clean) * RATE) < 5 * sd
    # The decision is the session id's score, so it can be checked per session.
    assert all((session_score(sid) < RATE) == (sid in stored) for sid in clean)

    sampling = telemetry.get_health_status()["sampling"]
    assert sampling["sessions_seen"] == SESSIONS
    assert sampling["sessions_kept"] == len(stored)
    assert sampling["kept_fraction"] == pytest.approx(len(stored) / SESSIONS, abs=1e-6)
    assert telemetry.get_health_status()["dropped_total"] == 0  # sampling is a choice, not a loss


def test_without_keep_errors_failing_sessions_follow_the_rate(make_telemetry: Callable[..., Telemetry],
                                                              db_path: Path) -> None:
    telemetry = make_telemetry(sample_rate=0.5, keep_errors=False)
    sids = []
    for i in range(400):
        sid = telemetry.track_start("codex", "ask", f"t{i}")
        telemetry.track_error(sid, "boom")
        telemetry.track_end(sid, "error")
        sids.append(sid)
    assert telemetry.flush(30)
    stored = _stored(db_path)
    assert set(stored) == {sid for sid in sids if session_score(sid) < 0.5}
    assert all(count == 3 for count in stored.values())


def test_sample_rate_zero_records_nothing(make_telemetry: Callable[..., Telemetry], db_path: Path) -> None:
    telemetry = make_telemetry(sample_rate=0.0, keep_errors=False)
    for i in range(200):
        sid = telemetry.track_start("gemini", "chat", f"t{i}")
        telemetry.track_end(sid)
    assert telemetry.flush(30)
    assert sum(_stored(db_path).values()) == 0
    assert telemetry.get_health_status()["sampling"]["kept_fraction"] == 0.0


def test_sample_rate_out_of_range_names_the_field(make_telemetry: Callable[..., Telemetry]) -> None:
    with pytest.raises(ValidationError, match="sample_rate"):
        make_telemetry(sample_rate=1.5)
    with pytest.raises(ValidationError, match="sample_rate"):
        Sample(-0.1)


def test_the_decision_is_the_same_in_every_process() -> None:
    import subprocess
    import sys

    sid = "0190c2a4-7e3b-7000-8000-000000000042"
    code = "from vibekit_telemetry.processing.sampling import session_score; print(session_score(" + repr(sid) + "))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out) == session_score(sid)


def test_held_events_count_as_dropped_only_when_discarded(make_telemetry: Callable[..., Telemetry],
                                                          db_path: Path) -> None:
    # sample_rate 0 with keep_errors: every session is held until it ends. A failing session's held
    # events are stored, so they were never dropped; a clean session's are dropped once, at its end.
    telemetry = make_telemetry(sample_rate=0.0, keep_errors=True)
    notices: list[str | None] = []
    telemetry.on("dropped", lambda notice: notices.append(notice.event_id))
    failing = telemetry.track_start("claude", "code", "fails")
    telemetry.track_stream(failing, "one")
    telemetry.track_stream(failing, "two")
    assert telemetry.flush(10)
    assert telemetry.get_health_status()["chain"]["dropped"].get("sample", 0) == 0  # held, not dropped
    telemetry.track_error(failing, "boom")
    telemetry.track_end(failing, "error")
    clean = telemetry.track_start("claude", "code", "clean")
    telemetry.track_stream(clean, "three")
    telemetry.track_end(clean, "completed")
    assert telemetry.flush(10)
    assert _stored(db_path) == {failing: 5}
    health = telemetry.get_health_status()
    assert health["chain"]["dropped"] == {"sample": 3}  # the clean session's start, stream and end
    assert len(notices) == 3 and None not in notices  # each discarded event told once, by its id
    assert health["dropped_total"] == 0


def test_evicted_and_shutdown_held_events_are_counted_once() -> None:
    from vibekit_telemetry.processing import Chain, Normalise

    sample = Sample(0.0, keep_errors=True, max_held_sessions=2)
    chain = Chain(Normalise(), [sample])

    def stream(sid: str) -> list[object]:
        return list(chain.run([{"event_type": "stream", "category": "claude", "session_id": sid,
                                "stream_data": "x"}]))

    for sid in ("a", "b", "a", "b"):
        assert stream(sid) == []
    assert chain.dropped == {}  # four events held
    stream("c")  # a third session: the oldest, a, is evicted with its two events
    assert chain.dropped == {"sample": 2} and sample.held_dropped_reasons["max_held_sessions"] == 2
    assert [e.session_id for e in chain.run([{"event_type": "error", "category": "claude", "session_id": "b",
                                              "label": "boom"}])] == ["b", "b", "b"]  # released, uncounted
    assert chain.dropped == {"sample": 2}
    assert sample.discard_held() == 1  # c's event, at shutdown
    assert chain.dropped == {"sample": 3} and sample.stats()["held_events"] == 0
