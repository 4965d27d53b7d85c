"""`telemetry db copy`: SQLite to PostgreSQL (and SQLite), resumable after an interruption, verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.query import SessionFilter
from vibekit_telemetry.store.copy import copy_events
from vibekit_telemetry.store.sql import SQLStore


def _record(db: Path, sessions: int, prefix: str) -> None:
    telemetry = Telemetry(db_path=str(db))
    for s in range(sessions):
        sid = telemetry.track_start("claude", "code", "go", session_id=f"{prefix}{s}")
        for i in range(8):
            telemetry.track_stream(sid, f"chunk {i}")
        telemetry.track_end(sid)
    telemetry.shutdown()


def _sessions(url: str) -> list[tuple[object, ...]]:
    store = SQLStore(url)
    try:
        return sorted((s.id, s.event_count, s.stream_count, s.status) for s in store.get_sessions(SessionFilter()))
    finally:
        store.shutdown()


def _copy(source: Path, target: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["db", "copy", "--from", str(source), "--to", target, "--batch", "7", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_copy_then_resume_with_new_events(tmp_path: Path, target_url: str) -> None:
    source = tmp_path / "source.db"
    _record(source, 4, "a")
    first = _copy(source, target_url)
    assert first == {"source_events": 40, "copied": 40, "read": 40, "missing_in_target": 0, "verified": True}
    _record(source, 2, "b")                               # the source keeps recording
    second = _copy(source, target_url)
    assert (second["copied"], second["read"], second["source_events"]) == (20, 20, 60)
    assert _sessions(target_url) == _sessions(f"sqlite:///{source}")


def test_an_interrupted_copy_resumes_and_stores_each_event_once(tmp_path: Path) -> None:
    source_db, target_db = tmp_path / "source.db", tmp_path / "target.db"
    _record(source_db, 5, "s")
    source, target = SQLStore(str(source_db)), SQLStore(str(target_db))
    source.initialize()
    target.initialize()

    def stop_after_two_batches(done: int, total: int) -> None:
        if done > 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_events(source, target, batch=10, progress=stop_after_two_batches)
    resumed = copy_events(source, target, batch=10)
    assert (resumed.read, resumed.stored, resumed.missing) == (20, 20, 0)
    source.shutdown()
    target.shutdown()
    assert _sessions(f"sqlite:///{target_db}") == _sessions(f"sqlite:///{source_db}")


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["db", "copy", "--from", str(tmp_path / "nope.db"), "--to", "x.db"])
    assert result.exit_code == 2 and "--from" in result.output and "nope.db" in result.output
