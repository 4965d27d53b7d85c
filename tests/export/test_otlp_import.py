"""`telemetry import --format otlp`: the traces `export --format otlp` wrote come back as the same events, once."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.export.importer import ImportRejectedError
from vibekit_telemetry.export.readers import ImportFileError

pytest.importorskip("opentelemetry.proto", reason="OTLP import needs the `otlp` extra (opentelemetry-proto)")

T0 = 1_704_888_000_000


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SQLite store with every event type, nested metadata, context and service fields."""
    path = tmp_path / "source.db"
    telemetry = Telemetry(db_path=str(path), raise_on_error=True)
    a = telemetry.track_start("claude", "code", 'Fix "this";\nplease', session_id="s1", timestamp=T0,
                              metadata={"model": "sonnet", "tags": ["a", "é😀"], "deep": {"x": [1, None, 2.5]}},
                              repo_url="https://github.com/a/b", sandbox_id="sb-1")
    telemetry.track_stream(a, "chunk\r\n1", timestamp=T0 + 1)
    telemetry.track_end(a, "completed", timestamp=T0 + 2)
    b = telemetry.track_start("codex", "chat", "hi", session_id="s2", timestamp=T0 + 10)
    telemetry.track_error(b, "rate limited", timestamp=T0 + 11)
    telemetry.track_end(b, "error", timestamp=T0 + 12)
    telemetry.track_start("gemini", "ask", "still open", session_id="s3", timestamp=T0 + 20)
    assert telemetry.flush()
    telemetry.shutdown()
    return path


def _run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)


def _snapshot(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    telemetry = Telemetry(db_path=str(path), raise_on_error=True)
    try:
        events = sorted((e.to_dict() for e in telemetry.query(limit=1000)), key=lambda e: e["event_id"])
        sessions = sorted((s.to_dict() for s in telemetry.get_sessions(limit=100)), key=lambda s: s["id"])
    finally:
        telemetry.shutdown()
    return events, sessions


def test_otlp_export_then_import_gives_back_the_same_events_and_sessions_once(db: Path, tmp_path: Path) -> None:
    traces = tmp_path / "traces.json"
    assert _run(db, "export", "--format", "otlp", "--output", str(traces)).exit_code == 0
    target = tmp_path / "target.db"
    result = _run(target, "import", "--format", "otlp", "--file", str(traces), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["read"], report["imported"], report["skipped"], report["rejected"]) == (7, 7, 0, 0)
    assert report["format"] == "otlp"
    assert _snapshot(target) == _snapshot(db)
    again = _run(target, "import", "--file", str(traces))  # format detected from the content; idempotent
    assert again.exit_code == 0 and "Imported 0 of 7 records" in again.output and "7 skipped" in again.output


def test_otlp_protobuf_and_gzip_files_are_read_too(db: Path, tmp_path: Path) -> None:
    from vibekit_telemetry.otlp.encode import encode_traces

    source = Telemetry(db_path=str(db), raise_on_error=True)
    events = source.query(session_ids=["s1", "s2"])
    source.shutdown()
    body = encode_traces(events).SerializeToString()
    (tmp_path / "traces.pb").write_bytes(body)
    (tmp_path / "traces.pb.gz").write_bytes(gzip.compress(body))
    for name in ("traces.pb", "traces.pb.gz"):
        target = tmp_path / f"{name}.db"
        telemetry = Telemetry(db_path=str(target), raise_on_error=True)
        report = telemetry.import_file(str(tmp_path / name))
        assert (report.format, report.imported, report.rejected) == ("otlp", 6, 0)
        assert sorted(e.event_id for e in telemetry.query()) == sorted(e.event_id for e in events)
        telemetry.shutdown()


def test_spans_of_other_tools_are_imported_by_the_genai_conventions(tmp_path: Path) -> None:
    trace, span = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    document = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "my-agent"}}]}, "scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": span, "name": "chat", "startTimeUnixNano": str(T0 * 1_000_000),
            "endTimeUnixNano": str((T0 + 1500) * 1_000_000),
            "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                           {"key": "gen_ai.prompt.0.content", "value": {"stringValue": "hello"}}]}]}]}]}
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(document))
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), raise_on_error=True)
    try:
        report = telemetry.import_file(str(path), format="otlp")
        assert (report.imported, report.rejected) == (2, 0)
        session = telemetry.get_session(trace)
        assert session is not None and session.category == "openai" and session.label == "hello"
        assert session.status == "completed" and session.duration == 1500
        assert telemetry.import_file(str(path)).skipped == 2
    finally:
        telemetry.shutdown()


def test_truncated_or_wrong_otlp_files_name_the_problem_and_import_nothing(db: Path, tmp_path: Path) -> None:
    traces = tmp_path / "traces.json"
    assert _run(db, "export", "--format", "otlp", "--output", str(traces)).exit_code == 0
    text = traces.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    not_otlp = tmp_path / "other.json"
    not_otlp.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}))
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\xff\xff\xff\xff not protobuf")
    bad_ids = tmp_path / "bad-ids.json"
    bad_ids.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "ab", "spanId": "cd", "name": "x"}]}]}]}))
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), raise_on_error=True)
    try:
        with pytest.raises(ImportFileError, match=r"line 1.*not valid JSON"):
            telemetry.import_file(str(cut), format="otlp")
        with pytest.raises(ImportFileError, match="traceId: expected a hex id"):
            telemetry.import_file(str(not_otlp), format="otlp")
        with pytest.raises(ImportFileError, match="not a protobuf ExportTraceServiceRequest"):
            telemetry.import_file(str(garbage))
        with pytest.raises(ImportRejectedError, match="traceId must be 16 bytes"):
            telemetry.import_file(str(bad_ids), format="otlp")
        assert telemetry.query() == []
        result = _run(tmp_path / "t.db", "import", "--format", "otlp", "--file", str(cut))
    finally:
        telemetry.shutdown()
    assert result.exit_code != 0 and "cut.json: line 1" in result.output
