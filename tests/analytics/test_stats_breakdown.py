"""`telemetry stats --breakdown agent,mode --percentiles`: groups and percentiles from the store's read API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vibekit_telemetry.cli import cli
from vibekit_telemetry.service import Telemetry

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEC = 1000


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Claude codes in 4 sessions of 10, 20, 30 and 100 s (2, 3, 4 and 5 events); codex chats once (1 error)
    and once without an end."""
    path = tmp_path_factory.mktemp("breakdown") / "telemetry.db"
    t = Telemetry(db_path=str(path), stream_flush_interval_ms=20, raise_on_error=True)
    try:
        at = T0
        for seconds, streams in ((10, 0), (20, 1), (30, 2), (100, 3)):
            sid = t.track_start("claude", "code", "fix", timestamp=at)
            for i in range(streams):
                t.track_stream(sid, f"chunk {i}", timestamp=at + i + 1)
            t.track_end(sid, "completed", timestamp=at + seconds * SEC)
            at += 200 * SEC
        chat = t.track_start("codex", "chat", "explain", timestamp=at)
        t.track_error(chat, "rate limited", timestamp=at + 1)
        t.track_end(chat, "error", timestamp=at + 5 * SEC)
        t.track_start("codex", "chat", "still going", timestamp=at + 10 * SEC)
        assert t.flush(10)
    finally:
        t.shutdown()
    return path


def _run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), "stats", *args], catch_exceptions=False)


def _json(db: Path, *args: str) -> Any:
    result = _run(db, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_breakdown_by_agent_and_mode_with_percentiles(db: Path) -> None:
    doc = _json(db, "--breakdown", "agent,mode", "--percentiles")["breakdown"]
    assert doc["by"] == ["category", "action"] and doc["percentiles"] == [50, 90, 95, 99]
    claude, codex = doc["groups"]
    assert claude["key"] == {"category": "claude", "action": "code"}
    assert (claude["events"], claude["errors"], claude["sessions"], claude["active"]) == (14, 0, 4, 0)
    # Nearest rank over 10, 20, 30, 100 s: p50 is the 2nd value, p90..p99 the 4th.
    assert claude["duration_ms"] == {"p50": 20_000, "p90": 100_000, "p95": 100_000, "p99": 100_000}
    assert claude["events_per_session"] == {"p50": 3, "p90": 5, "p95": 5, "p99": 5}
    assert claude["avg_duration_ms"] == 40_000
    assert codex["key"] == {"category": "codex", "action": "chat"}
    assert (codex["events"], codex["errors"], codex["sessions"], codex["active"], codex["ended"]) == (4, 1, 2, 1, 1)
    assert codex["duration_ms"]["p99"] == 5_000


def test_breakdown_by_status_and_by_type(db: Path) -> None:
    status = _json(db, "--breakdown", "status", "--agent", "codex")["breakdown"]["groups"]
    assert [(g["key"]["status"], g["sessions"]) for g in status] == [("active", 1), ("error", 1)]
    assert all("events" not in g for g in status)  # events have no status
    types = _json(db, "--breakdown", "type")["breakdown"]["groups"]
    assert {g["key"]["event_type"]: g["events"] for g in types} == {"start": 6, "end": 5, "stream": 6, "error": 1}
    assert all("sessions" not in g for g in types)  # sessions have no event type


def test_percentiles_alone_and_the_table(db: Path) -> None:
    everything = _json(db, "--percentiles")["breakdown"]["groups"]
    assert len(everything) == 1 and everything[0]["sessions"] == 6
    assert everything[0]["duration_ms"]["p50"] == 20_000  # 5, 10, 20, 30, 100 s: rank 3
    table = _run(db, "--breakdown", "agent,mode", "--percentiles")
    assert table.exit_code == 0, table.output
    text = table.stdout
    assert "By category, action" in text and "dur p50" in text and "1m 40s" in text


@pytest.mark.parametrize(("args", "named"), [
    (("--breakdown", "agent,colour"), "agent (category), mode (action), type (event_type), status"),
    (("--breakdown", "type,status"), "type or status"),
    (("--breakdown", "agent,category"), "each key once"),
    (("--breakdown", " , "), "--breakdown"),
    (("--breakdown", "type", "--percentiles"), "--percentiles"),
])
def test_bad_breakdown_exits_2_naming_the_allowed_keys(db: Path, args: tuple[str, ...], named: str) -> None:
    result = _run(db, *args)
    assert result.exit_code == 2
    assert named in result.output
