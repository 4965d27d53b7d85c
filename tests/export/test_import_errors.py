"""Bad import files: a clear error naming the line or row, and nothing imported unless skip_invalid."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.export.importer import ImportRejectedError

T0 = 1_704_888_000_000
Make = Callable[..., Telemetry]


@pytest.fixture
def exported(make_memory: Make, tmp_path: Path) -> dict[str, Path]:
    """Five events exported in each text format."""
    source = make_memory()
    sid = source.track_start("claude", "code", "p", session_id="e1", timestamp=T0)
    for i in range(3):
        source.track_stream(sid, f"chunk {i}", timestamp=T0 + i + 1)
    source.track_end(sid, "completed", timestamp=T0 + 9)
    paths = {fmt: tmp_path / f"events.{fmt}" for fmt in ("json", "ndjson", "csv")}
    for fmt, path in paths.items():
        source.export(fmt, output_path=str(path))
    return paths


def _nothing_imported(target: Telemetry) -> bool:
    return target.query() == []


def test_truncated_gzip_names_the_problem_and_imports_nothing(exported: dict[str, Path], make_memory: Make,
                                                              tmp_path: Path) -> None:
    data = gzip.compress(exported["ndjson"].read_bytes())
    broken = tmp_path / "cut.ndjson.gz"
    broken.write_bytes(data[: len(data) // 2])
    target = make_memory()
    with pytest.raises(ValidationError, match="truncated"):
        target.import_file(str(broken))
    assert _nothing_imported(target)


def test_truncated_json_export_names_the_line(exported: dict[str, Path], make_memory: Make,
                                              tmp_path: Path) -> None:
    text = exported["json"].read_text()
    broken = tmp_path / "cut.json"
    broken.write_text(text[: text.index("chunk 2") + 3])
    target = make_memory()
    with pytest.raises(ValidationError, match=r"cut\.json: end of file after line 5: the file is truncated"):
        target.import_file(str(broken))
    assert _nothing_imported(target)
    missing_end = tmp_path / "no-end.json"
    missing_end.write_text(text[: text.index("\n],")] + "\n")
    with pytest.raises(ValidationError, match="truncated"):
        target.import_file(str(missing_end))
    assert _nothing_imported(target)


def test_bad_csv_row_names_its_line_and_skip_invalid_imports_the_rest(exported: dict[str, Path],
                                                                       make_memory: Make, tmp_path: Path) -> None:
    lines = exported["csv"].read_bytes().decode().split("\r\n")
    lines[3] = lines[3].replace(str(T0 + 2), "yesterday")
    broken = tmp_path / "bad.csv"
    broken.write_bytes("\r\n".join(lines).encode())
    target = make_memory()
    with pytest.raises(ValidationError, match=r"bad\.csv: line 4 \(row 3\): timestamp: expected an integer"):
        target.import_file(str(broken))
    assert _nothing_imported(target)
    report = target.import_file(str(broken), skip_invalid=True)
    assert (report.imported, report.rejected, report.rejections[0][0]) == (4, 1, "line 4 (row 3)")
    assert "chunk 1" not in [e.stream_data for e in target.query()]


def test_invalid_event_values_are_reported_with_their_place(make_memory: Make, tmp_path: Path) -> None:
    path = tmp_path / "mixed.ndjson"
    rows = [{"event_type": "start", "session_id": "m1", "category": "claude", "timestamp": T0},
            {"event_type": "stream", "session_id": "m1", "stream_data": "ok", "timestamp": T0 + 1},
            {"event_type": "stream", "stream_data": "no session", "timestamp": T0 + 2},
            {"event_type": "start", "category": "claude", "timestamp": 1_700_000_000},
            {"event_type": "end", "session_id": "m1", "timestamp": T0 + 3, "bogus": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    target = make_memory()
    with pytest.raises(ImportRejectedError) as caught:
        target.import_file(str(path))
    assert "line 3: session_id: expected a non-empty string" in str(caught.value)
    assert "(and 2 more)" in str(caught.value) and _nothing_imported(target)

    report = target.import_file(str(path), skip_invalid=True)
    assert (report.read, report.imported, report.rejected) == (5, 2, 3)
    places = [where for where, _ in report.rejections]
    assert places == ["line 3", "line 4", "line 5"]
    assert "looks like seconds" in report.rejections[1][1] and "bogus" in report.rejections[2][1]
    assert [e.event_type for e in target.query()] == ["start", "stream"]


def test_records_without_ids_get_stable_ones_so_a_second_import_adds_nothing(make_memory: Make,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps([{"sessionId": "f1", "eventType": "start", "agentType": "claude", "timestamp": T0},
                                {"sessionId": "f1", "eventType": "stream", "streamData": "x", "timestamp": T0 + 1}]))
    target = make_memory()
    assert target.import_file(str(path)).imported == 2
    assert (target.import_file(str(path)).skipped, len(target.query())) == (2, 2)


@pytest.mark.parametrize(("content", "match"), [
    (b"PAR1 this is not parquet", "Parquet"),
    (b"\xff\xfe\x00garbage", "encoding"),
    (b'event_type,category,flavour\r\n"start","claude","x"\r\n', "known event columns, got 'flavour'"),
    (b'event_type,category\r\n"start","claude\r\n', "quote is not closed"),
    (b'id,category,action,status,start_time\r\n"s","c",,"active",1\r\n', "sessions table"),
    (b'{"resourceSpans": "not a list"}', "not an OTLP/JSON ExportTraceServiceRequest"),
])
def test_unreadable_files_are_refused_clearly(content: bytes, match: str, make_memory: Make, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    target = make_memory()
    with pytest.raises(ValidationError, match=match):
        target.import_file(str(path))
    assert _nothing_imported(target)


def test_a_disabled_telemetry_refuses_to_import(tmp_path: Path) -> None:
    telemetry = Telemetry(disabled=True)
    with pytest.raises(ValidationError, match="disabled"):
        telemetry.import_file(str(tmp_path / "x.json"))
