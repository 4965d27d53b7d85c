"""The issue's commands as a user types them, on a real SQLite file, read back by pandas, pyarrow and DuckDB."""

from __future__ import annotations

import gzip
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli

T0 = 1_704_888_000_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SQLite store with two finished sessions and an error, recorded through the SDK."""
    path = tmp_path / "telemetry.db"
    telemetry = Telemetry(db_path=str(path), raise_on_error=True)
    a = telemetry.track_start("claude", "code", 'Fix "this"; bug,\nplease', session_id="s1", timestamp=T0,
                              metadata={"model": "sonnet", "tags": ["a", "b"]})
    telemetry.track_stream(a, "chunk;1,\r\nnext", timestamp=T0 + 1)
    telemetry.track_end(a, "completed", timestamp=T0 + 2)
    b = telemetry.track_start("codex", "chat", "hi", session_id="s2", timestamp=T0 + 10)
    telemetry.track_error(b, "rate limited", timestamp=T0 + 11)
    telemetry.track_end(b, "error", timestamp=T0 + 12)
    telemetry.track_start("gemini", "ask", "later", session_id="s3", timestamp=T0 + 20)
    assert telemetry.flush()
    telemetry.shutdown()
    return path


def _run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)


def test_json_gzip_since_has_header_events_and_counts(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.json.gz"
    result = _run(db, "export", "--format", "json", "--compress", "gzip", "--output", str(out),
                  "--since", str(T0 + 10))
    assert result.exit_code == 0, result.output
    document = json.loads(gzip.decompress(out.read_bytes()))
    assert document["export"]["schema_version"] == 1 and document["export"]["filter"]["since"] == T0 + 10
    assert [e["session_id"] for e in document["events"]] == ["s2", "s2", "s2", "s3"]
    assert document["counts"] == {"events": 4}


def test_csv_per_table_files_read_by_pandas(db: Path, tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    out = tmp_path / "telemetry-data.csv"
    result = _run(db, "export", "--format", "csv", "--delimiter", ";", "--tables", "events,sessions",
                  "--output", str(out))
    assert result.exit_code == 0, result.output
    events = pandas.read_csv(tmp_path / "telemetry-data-events.csv", sep=";")
    sessions = pandas.read_csv(tmp_path / "telemetry-data-sessions.csv", sep=";")
    assert len(events) == 7 and sorted(sessions["id"]) == ["s1", "s2", "s3"]
    first = events[events["event_type"] == "start"].iloc[0]
    assert first["label"] == 'Fix "this"; bug,\nplease'
    assert json.loads(first["metadata"]) == {"model": "sonnet", "tags": ["a", "b"]}
    assert events[events["event_type"] == "stream"].iloc[0]["stream_data"] == "chunk;1,\r\nnext"
    assert dict(zip(sessions["id"], sessions["status"], strict=True)) == {"s1": "completed", "s2": "error",
                                                                         "s3": "active"}


def test_parquet_zstd_is_typed_and_read_by_pyarrow_and_duckdb(db: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "events.parquet"
    assert _run(db, "export", "--format", "parquet", "--compression", "zstd", "--output", str(out)).exit_code == 0
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    assert str(table.schema.field("timestamp").type) == "int64"
    assert str(table.schema.field("duration").type) == "double"
    assert table.num_rows == 7 and table.column("category").to_pylist()[0] == "claude"
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT category, count(*) FROM '{out}' WHERE event_type = 'start' "
                      "GROUP BY category ORDER BY category").fetchall()
    assert rows == [("claude", 1), ("codex", 1), ("gemini", 1)]


def test_otlp_export_of_chosen_sessions(db: Path, tmp_path: Path) -> None:
    try:
        from vibekit_telemetry.otlp.encode import encode_traces_json  # noqa: F401
    except ImportError:
        pytest.skip("needs the OTLP encoder of issue 8")
    out = tmp_path / "traces.json"
    result = _run(db, "export", "--format", "otlp", "--sessions", "s1,s2", "--output", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert "resourceSpans" in document
    text = out.read_text()
    assert "s1" in text and "s2" in text and "s3" not in text


def test_convert_then_import_json_and_csv_idempotently(db: Path, tmp_path: Path) -> None:
    exported = tmp_path / "export.json"
    assert _run(db, "export", "--format", "json", "--output", str(exported)).exit_code == 0
    converted = tmp_path / "export.csv"
    result = _run(db, "convert", "--input", str(exported), "--output", str(converted), "--from", "json",
                  "--to", "csv")
    assert result.exit_code == 0 and "Converted 7 events" in result.output

    fresh = tmp_path / "fresh.db"
    first = _run(fresh, "import", "--format", "json", "--file", str(exported), "--json")
    assert json.loads(first.output)["imported"] == 7
    second = _run(fresh, "import", "--format", "csv", "--file", str(converted), "--json")
    assert (json.loads(second.output)["imported"], json.loads(second.output)["skipped"]) == (0, 7)
    telemetry = Telemetry(db_path=str(fresh))
    try:
        assert telemetry.get_session("s2").status == "error"  # type: ignore[union-attr]
        assert telemetry.get_stats().total_events == 7
    finally:
        telemetry.shutdown()


def test_import_with_a_transform_script(db: Path, tmp_path: Path) -> None:
    exported = tmp_path / "data.ndjson"
    assert _run(db, "export", "--format", "ndjson", "--output", str(exported)).exit_code == 0
    script = tmp_path / "transform.py"
    script.write_text("def transform(record):\n"
                      "    if record['event_type'] == 'stream':\n        return None\n"
                      "    return {**record, 'metadata': {**(record.get('metadata') or {}), 'imported': True}}\n")
    fresh = tmp_path / "fresh.db"
    result = _run(fresh, "import", "--file", str(exported), "--transform", str(script))
    assert result.exit_code == 0, result.output
    assert "Imported 6 of 7" in result.output and "1 dropped by the transform" in result.output
    telemetry = Telemetry(db_path=str(fresh))
    try:
        events = telemetry.query()
        assert len(events) == 6 and all(e.metadata and e.metadata["imported"] for e in events)
    finally:
        telemetry.shutdown()


def _legacy_003(path: Path, rows: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE telemetry (id INTEGER PRIMARY KEY AUTOINCREMENT, sessionId TEXT, eventType TEXT, "
                 "agentType TEXT, mode TEXT, prompt TEXT, streamData TEXT, sandboxId TEXT, repoUrl TEXT, "
                 "metadata TEXT, timestamp INTEGER)")
    conn.executemany("INSERT INTO telemetry (sessionId, eventType, agentType, mode, prompt, streamData, sandboxId, "
                     "repoUrl, metadata, timestamp) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()


def test_migrate_legacy_seed_003_rebuilds_sessions_and_runs_twice_safely(tmp_path: Path) -> None:
    old = tmp_path / "old-telemetry.db"
    _legacy_003(old, [
        ("L1", "start", "claude", "code", "Fix it", None, "sb-1", "https://git/r", '{"model": "opus"}', T0),
        ("L1", "stream", "claude", "code", None, "partial output", None, None, None, T0 + 5),
        ("L1", "end", "claude", "code", None, None, None, None, '{"status": "completed"}', T0 + 9),
        ("L2", "start", "codex", "chat", "hello", None, None, None, "not json", T0 + 20),
        ("L2", "teleport", "codex", "chat", None, None, None, None, None, T0 + 21),
    ])
    store = tmp_path / "new.db"
    result = _run(store, "migrate-legacy", "--from", str(old))
    assert result.exit_code == 0, result.output
    assert "Imported 4 of 5" in result.output and "telemetry id 5" in result.output
    again = _run(store, "migrate-legacy", "--from", str(old), "--json")
    assert (json.loads(again.output)["imported"], json.loads(again.output)["skipped"]) == (0, 4)
    telemetry = Telemetry(db_path=str(store))
    try:
        session = telemetry.get_session("L1", with_events=True)
        assert session is not None and session.status == "completed" and session.event_count == 3
        assert (session.category, session.action, session.label, session.sandbox_id, session.repo_url) == (
            "claude", "code", "Fix it", "sb-1", "https://git/r")
        assert session.events is not None and session.events[1].stream_data == "partial output"
        assert telemetry.get_session("L2").metadata == {"legacy_metadata": "not json"}  # type: ignore[union-attr]
    finally:
        telemetry.shutdown()


def test_migrate_legacy_seed_002_schema(tmp_path: Path) -> None:
    old = tmp_path / "vibekit.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE telemetry_sessions (id TEXT PRIMARY KEY, start_time REAL, status TEXT)")
    conn.execute("CREATE TABLE telemetry_events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, "
                 "event_type TEXT NOT NULL, agent_type TEXT NOT NULL, mode TEXT, prompt TEXT, stream_data TEXT, "
                 "sandbox_id TEXT, repo_url TEXT, metadata TEXT, timestamp REAL NOT NULL, version INTEGER)")
    conn.executemany("INSERT INTO telemetry_events (session_id, event_type, agent_type, mode, prompt, stream_data, "
                     "timestamp) VALUES (?,?,?,?,?,?,?)",
                     [("D1", "start", "gemini", "ask", "q", None, T0 / 1000),  # seconds, as REAL
                      ("D1", "end", "gemini", "ask", None, None, T0 / 1000 + 3)])
    conn.commit()
    conn.close()
    store = tmp_path / "new.db"
    assert _run(store, "migrate-legacy", "--from", str(old)).exit_code == 0
    telemetry = Telemetry(db_path=str(store))
    try:
        session = telemetry.get_session("D1")
        assert session is not None and session.start_time == T0 and session.duration == 3000
    finally:
        telemetry.shutdown()


def test_dump_json_streams_the_same_document(db: Path) -> None:
    result = _run(db, "dump", "--format", "json")
    assert result.exit_code == 0
    assert [e["session_id"] for e in json.loads(result.output)] == ["s1"] * 3 + ["s2"] * 3 + ["s3"]


@pytest.mark.parametrize("args", [
    ["export", "--format", "xml", "--output", "x"],
    ["export", "--format", "csv", "--delimiter", "ab", "--output", "x.csv"],
    ["export", "--format", "json", "--compress", "lz4", "--output", "x.json"],
    ["export", "--format", "json", "--tables", "sessions", "--output", "x.json"],
    ["import", "--file", "missing.json"],
    ["migrate-legacy", "--from", "missing.db"],
])
def test_bad_options_exit_2_naming_the_field(db: Path, tmp_path: Path, args: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run(db, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.glob("x*")) == []


def test_the_console_script_shows_no_progress_noise_when_piped(db: Path, tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "e.ndjson"
    script = Path(sys.executable).parent / "telemetry"
    done = subprocess.run([str(script), "--db", str(db), "export", "--format", "ndjson", "--output", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Exported 7 events to")
    assert len(out.read_text().splitlines()) == 7


Make = Callable[..., Telemetry]
