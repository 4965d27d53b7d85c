"""The kept fraction in get_stats(), `telemetry stats` and GET /api/stats, so sampled counts can be scaled."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from click.testing import CliRunner

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.processing.sampling import session_score

SESSIONS = 400
RATE = 0.25


def _record(telemetry: Telemetry) -> set[str]:
    kept: set[str] = set()
    for i in range(SESSIONS):
        sid = telemetry.track_start("claude", "code", f"task {i}")
        telemetry.track_end(sid)
        if session_score(sid) < RATE:
            kept.add(sid)
    assert telemetry.flush(30)
    return kept


def test_get_stats_reports_the_kept_fraction_of_this_writer(make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry(sample_rate=RATE, keep_errors=False)
    kept = _record(telemetry)
    stats = telemetry.get_stats()
    sampling = stats.sampling
    assert sampling is not None and sampling["sessions_seen"] == SESSIONS
    assert sampling["sessions_kept"] == len(kept) == stats.total_sessions
    assert sampling["kept_fraction"] == round(len(kept) / SESSIONS, 6) and sampling["sample_rate"] == RATE
    assert stats.to_dict()["sampling"] == sampling
    # Scaling the stored count by the kept fraction gives back the sessions that ran.
    assert round(stats.total_sessions / sampling["kept_fraction"]) == SESSIONS


def test_without_sampling_the_fraction_is_one(make_telemetry: Callable[..., Telemetry]) -> None:
    telemetry = make_telemetry()
    telemetry.track_start("claude", "code", "kept")
    assert telemetry.flush(10)
    assert telemetry.get_stats().sampling == {"sessions_seen": 0, "sessions_kept": 0, "kept_fraction": 1.0,
                                              "sample_rate": 1.0, "keep_errors": True}


def test_other_processes_read_it_from_the_writers_records(make_telemetry: Callable[..., Telemetry],
                                                          db_path: Path) -> None:
    writer = make_telemetry(sample_rate=RATE, keep_errors=False)
    kept = _record(writer)
    writer.shutdown()  # its final writer_runs record holds the sampling counts
    result = CliRunner().invoke(cli, ["--db", str(db_path), "stats", "--format", "json"])
    assert result.exit_code == 0, result.output
    sampling = json.loads(result.output)["sampling"]
    assert (sampling["sessions_seen"], sampling["sessions_kept"]) == (SESSIONS, len(kept))
    table = CliRunner().invoke(cli, ["--db", str(db_path), "stats"])
    assert f"kept {len(kept):,} of {SESSIONS:,} sessions" in table.output and "scale counts by" in table.output

    reader = make_telemetry()  # a server on the same store: the writer's runs and its own (none sampled)
    with reader.start_api_server(port=0) as server:
        body = httpx.get(f"{server.url}/api/stats", timeout=10).json()
    assert body["sampling"]["sessions_kept"] == len(kept) and body["sampling"]["sessions_seen"] == SESSIONS
    assert body["sampling"]["kept_fraction"] == round(len(kept) / SESSIONS, 6)
