"""Where exports go: whole files or none, fsspec URLs, and the API's confinement to the export directory."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.export.exports import export_events
from vibekit_telemetry.export.output import confine

T0 = 1_704_888_000_000
Make = Callable[..., Telemetry]


class _Interrupted:
    """A store whose event stream breaks after some events, like a crash or Ctrl-C halfway through."""

    def __init__(self, events: int) -> None:
        self.events = events

    def iter_events(self, filter_: object, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        for i in range(self.events):
            yield TelemetryEvent("custom", "claude", timestamp=T0 + i, event_id=f"e{i}")
        raise KeyboardInterrupt


@pytest.mark.parametrize(("fmt", "name"), [("json", "out.json.gz"), ("csv", "out.csv"), ("parquet", "out.parquet"),
                                           ("ndjson", "out.ndjson")])
def test_an_interrupted_export_leaves_no_file_and_keeps_the_previous_one(fmt: str, name: str,
                                                                        tmp_path: Path) -> None:
    target = tmp_path / name
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(12_000), fmt, output_path=str(target))
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"previous complete export")
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(12_000), fmt, output_path=str(target))
    assert list(tmp_path.iterdir()) == [target] and target.read_bytes() == b"previous complete export"


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_an_interrupted_export_to_a_url_leaves_no_object(fmt: str) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(12_000), fmt, output_path=f"memory://interrupted/out.{fmt}")
    assert not memory.exists(f"/interrupted/out.{fmt}")
    memory.pipe(f"/interrupted/out.{fmt}", b"previous complete export")
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(12_000), fmt, output_path=f"memory://interrupted/out.{fmt}")
    assert memory.cat(f"/interrupted/out.{fmt}") == b"previous complete export"


def test_fsspec_url_destination(make_memory: Make) -> None:
    fsspec = pytest.importorskip("fsspec")
    telemetry = make_memory()
    telemetry.track_start("claude", "code", "to memory fs", session_id="u1")
    result = telemetry.export("ndjson", output_path="memory://bucket/events.ndjson")
    assert result.record_count == 1 and result.file_size is not None and result.file_size > 0
    with fsspec.open("memory://bucket/events.ndjson", "rt") as remote:
        assert json.loads(remote.readline())["session_id"] == "u1"


def test_confine_refuses_paths_leaving_the_export_directory(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    (root / "daily").mkdir(parents=True)
    outside = tmp_path / "secrets"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert confine("daily/e.json", root) == str((root / "daily" / "e.json").resolve())
    assert confine(str(root / "e.csv"), root) == str((root / "e.csv").resolve())
    for bad in ["../e.json", "daily/../../e.json", str(outside / "e.json"), "/etc/passwd", "link/e.json",
                "s3://bucket/e.json", "file:///tmp/e.json", "", ".", "a\x00b"]:
        with pytest.raises(ValidationError) as caught:
            confine(bad, root)
        assert caught.value.field == "output_path"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Telemetry, httpx.Client, Path]]:
    """A real server on a loopback port over a SQLite store, exports confined to tmp/exports."""
    pytest.importorskip("fastapi")
    root = tmp_path / "exports"
    telemetry = Telemetry(db_path=str(tmp_path / "t.db"), exports={"export_dir": str(root)})
    telemetry.track_start("claude", "code", "hello", session_id="a1", timestamp=T0)
    telemetry.track_end("a1", "completed", timestamp=T0 + 5)
    assert telemetry.flush()
    server = telemetry.start_api_server(port=0)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield telemetry, client, root
    finally:
        server.stop()
        telemetry.shutdown()


def test_api_export_writes_inside_the_export_directory(api: tuple[Telemetry, httpx.Client, Path]) -> None:
    _, client, root = api
    answer = client.post("/api/exports", json={"format": "csv", "output_path": "team/events.csv.gz",
                                               "filter": {"category": "claude"}, "tables": ["events", "sessions"]})
    assert answer.status_code == 400  # the sub-directory does not exist: nothing is created outside checks
    (root / "team").mkdir()
    answer = client.post("/api/exports", json={"format": "csv", "output_path": "team/events.csv.gz",
                                               "filter": {"category": "claude"}, "tables": ["events", "sessions"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["path"] == os.path.join("team", "events-events.csv.gz")
    assert body["files"]["sessions"] == [os.path.join("team", "events-sessions.csv.gz"), 1]
    assert sorted(p.name for p in (root / "team").iterdir()) == ["events-events.csv.gz", "events-sessions.csv.gz"]


@pytest.mark.parametrize(("body", "field"), [
    ({"format": "json", "output_path": "../escape.json"}, "output_path"),
    ({"format": "json", "output_path": "/tmp/escape.json"}, "output_path"),
    ({"format": "json", "output_path": "link/escape.json"}, "output_path"),
    ({"format": "yaml", "output_path": "e.yaml"}, "format"),
    ({"format": "json"}, "output_path"),
    ({"format": "json", "output_path": "e.json", "overwrite": True}, "overwrite"),
    ({"format": "json", "output_path": "e.json", "filter": {"colour": "red"}}, "colour"),
    ({"format": "parquet", "output_path": "e.parquet", "compression": 5}, "compression"),
    ({"format": "csv", "output_path": "e.csv", "tables": 5}, "tables"),
    ({"format": "csv", "output_path": "e.csv", "delimiter": ["x"]}, "delimiter"),
    ({"format": "json", "output_path": "e.json", "pretty": "yes"}, "pretty"),
])
def test_api_export_refuses_bad_requests_naming_the_field(api: tuple[Telemetry, httpx.Client, Path],
                                                         tmp_path: Path, body: dict[str, object],
                                                         field: str) -> None:
    _, client, root = api
    root.mkdir(exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    if not (root / "link").exists():
        (root / "link").symlink_to(outside)
    answer = client.post("/api/exports", json=body)
    assert answer.status_code == 400, answer.text
    assert field in json.dumps(answer.json())
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.json").exists()
    assert [p.name for p in root.iterdir()] == ["link"]


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_without_orjson_the_stdlib_writes_the_same_events(fmt: str, make_memory: Make, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = make_memory()
    sid = telemetry.track_start("claude", "code", 'a "quoted",\nlabel é😀', metadata={"deep": {"x": [1, None, 2.5]}})
    telemetry.track_end(sid, "completed")
    fast, slow = tmp_path / f"fast.{fmt}", tmp_path / f"slow.{fmt}"
    telemetry.export(fmt, output_path=str(fast))
    monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` raises ImportError: the stdlib path
    telemetry.export(fmt, output_path=str(slow))

    def events(path: Path) -> list[dict[str, object]]:
        text = path.read_text(encoding="utf-8")
        if fmt == "ndjson":
            return [json.loads(line) for line in text.splitlines()]
        return list(json.loads(text)["events"])

    assert events(slow) == events(fast) and len(events(fast)) == 2
