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
