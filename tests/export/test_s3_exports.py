"""Exports to s3:// and imports from it against a real S3-protocol server (moto's) on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vibekit_telemetry import Telemetry
from vibekit_telemetry.cli import cli
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.export.exports import export_events

T0 = 1_704_888_000_000
MiB = 1 << 20


def _client(s3: dict[str, Any]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint_url"], aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _keys(s3: dict[str, Any]) -> list[str]:
    return [item["Key"] for item in _client(s3).list_objects_v2(Bucket="exports").get("Contents", [])]


def _filled(tmp_path: Path, name: str = "source.db") -> Telemetry:
    telemetry = Telemetry(db_path=str(tmp_path / name), raise_on_error=True)
    for i in range(3):
        sid = telemetry.track_start("claude", "code", f"task {i}; é😀", session_id=f"s{i}", timestamp=T0 + i * 10,
                                    metadata={"n": i, "tags": ["a", "b"]})
        telemetry.track_stream(sid, "chunk,\n1", timestamp=T0 + i * 10 + 1)
        telemetry.track_end(sid, "completed", timestamp=T0 + i * 10 + 2)
    assert telemetry.flush()
    return telemetry


@pytest.mark.parametrize("name", ["events.ndjson.zst", "events.parquet"])
def test_export_to_s3_then_import_from_it(name: str, s3: dict[str, Any], tmp_path: Path) -> None:
    source = _filled(tmp_path)
    target = Telemetry(db_path=str(tmp_path / "target.db"), raise_on_error=True)
    try:
        url = f"s3://exports/daily/{name}"
        result = source.export(name.split(".")[1], output_path=url, storage_options=s3)
        assert result.record_count == 9 and result.path == url
        assert _keys(s3) == [f"daily/{name}"] and result.file_size == _client(s3).head_object(
            Bucket="exports", Key=f"daily/{name}")["ContentLength"]
        report = target.import_file(url, storage_options=s3)
        assert (report.imported, report.rejected) == (9, 0)
        assert [e.to_dict() for e in target.query()] == [e.to_dict() for e in source.query()]
        assert target.import_file(url, storage_options=s3).skipped == 9  # idempotent
    finally:
        source.shutdown()
        target.shutdown()


def test_cli_export_and_import_s3_with_the_aws_environment(s3: dict[str, Any], tmp_path: Path) -> None:
    _filled(tmp_path).shutdown()
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", str(tmp_path / "source.db"), "export", "--format", "json", "--output",
                              "s3://exports/all.json.gz", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["record_count"] == 9 and _keys(s3) == ["all.json.gz"]
    back = runner.invoke(cli, ["--db", str(tmp_path / "fresh.db"), "import", "--file", "s3://exports/all.json.gz",
                               "--json"], catch_exceptions=False)
    assert back.exit_code == 0, back.output
    assert json.loads(back.output)["imported"] == 9
    missing = runner.invoke(cli, ["--db", str(tmp_path / "fresh.db"), "import", "--file", "s3://exports/none.json"])
    assert missing.exit_code != 0 and "file: expected an existing file" in missing.output


class _Interrupted:
    """An event source that breaks after ~7 MB of events, like a crash or Ctrl-C halfway through an upload."""

    def iter_events(self, filter_: object, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        for i in range(7_000):
            yield TelemetryEvent("stream", "claude", session_id="s", stream_data="x" * 1000, timestamp=T0 + i,
                                 event_id=f"e{i:05d}")
        raise KeyboardInterrupt


def test_an_interrupted_s3_export_leaves_no_object_and_no_upload_parts(s3: dict[str, Any]) -> None:
    # 5 MiB parts (the S3 minimum): the interrupted export has uploaded a part before it breaks.
    fmt = "ndjson"
    options = {**s3, "default_block_size": 5 * MiB}
    client = _client(s3)
    url = f"s3://exports/out.{fmt}"
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(), fmt, output_path=url, storage_options=options, compression="none")
    assert _keys(s3) == []
    assert client.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []
    client.put_object(Bucket="exports", Key=f"out.{fmt}", Body=b"previous complete export")
    with pytest.raises(KeyboardInterrupt):
        export_events(_Interrupted(), fmt, output_path=url, storage_options=options, compression="none")
    assert client.get_object(Bucket="exports", Key=f"out.{fmt}")["Body"].read() == b"previous complete export"
    assert client.list_multipart_uploads(Bucket="exports").get("Uploads", []) == []


def test_bad_s3_urls_are_clear_errors(s3: dict[str, Any], make_memory: Callable[..., Telemetry]) -> None:
    telemetry = make_memory()
    telemetry.track_start("claude", "code", "x", session_id="u1")
    with pytest.raises(ValidationError) as caught:
        telemetry.import_file("s3://exports/missing.ndjson", storage_options=s3)
    assert caught.value.field == "file"
    with pytest.raises(ValidationError, match=r"cannot write s3://no-such-bucket/x\.ndjson: .*bucket") as caught:
        telemetry.export("ndjson", output_path="s3://no-such-bucket/x.ndjson", storage_options=s3)
    assert caught.value.field == "output_path"
