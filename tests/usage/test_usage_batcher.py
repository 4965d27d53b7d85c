"""The usage-batches exporter: exact size, row and time cuts, atomic names, spool replay, replicas, S3."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from usage_support import payload

from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.usage.batcher import UsageBatcher, build_usage_batches
from vibekit_telemetry.usage.lake import Lake
from vibekit_telemetry.usage.payload import payload_id, to_raw_event

pytest.importorskip("fsspec", reason="the usage extra is not installed: pip install 'vibekit-telemetry[usage]'")


def _event(i: int, **overrides: Any) -> TelemetryEvent:
    data = payload(sessionId=f"s-{i:06d}", **overrides)
    raw = to_raw_event(data)
    return TelemetryEvent("custom", "usage", action=raw["action"], label=raw["label"], timestamp=raw["timestamp"],
                          metadata=raw["metadata"], event_id=payload_id(data))


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("dt=*/hour=*/*") if p.name.endswith((".ndjson", ".ndjson.gz")))


def _rows(path: Path) -> list[dict[str, Any]]:
    body = path.read_bytes()
    if path.name.endswith(".gz"):
        body = gzip.decompress(body)
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def batchers() -> Iterator[list[UsageBatcher]]:
    made: list[UsageBatcher] = []
    yield made
    for batcher in made:
        batcher.shutdown()


def test_row_limit_cuts_exactly(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    batcher = UsageBatcher(str(tmp_path / "b"), max_rows=4, max_age_s=3600)
    batchers.append(batcher)
    batcher.export([_event(i) for i in range(4)])
    batcher.export([_event(i) for i in range(4, 10)])
    objects = _objects(tmp_path / "b")
    assert [len(_rows(p)) for p in objects] == [4, 4]
    assert batcher.status()["spooled_rows"] == 2
    assert [r["sessionId"] for p in objects for r in _rows(p)] == [f"s-{i:06d}" for i in range(8)]


def test_byte_limit_cuts_exactly(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    line = len(json.dumps(payload(sessionId="s-000000"), separators=(",", ":"), ensure_ascii=False)) + 1
    batcher = UsageBatcher(str(tmp_path / "b"), max_bytes=3 * line, max_rows=100, max_age_s=3600, compress=False)
    batchers.append(batcher)
    batcher.export([_event(i) for i in range(2)])
    assert _objects(tmp_path / "b") == []  # 2 rows: under the byte limit
    batcher.export([_event(i) for i in range(2, 8)])
    objects = _objects(tmp_path / "b")
    assert [p.stat().st_size for p in objects] == [3 * line, 3 * line]  # exactly the limit, never over
    assert batcher.status()["spooled_rows"] == 2


def test_time_limit_writes_a_small_batch(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    batcher = UsageBatcher(str(tmp_path / "b"), max_rows=100, max_age_s=0.2)
    batchers.append(batcher)
    batcher.export([_event(1), _event(2)])
    deadline = time.monotonic() + 20
    while not _objects(tmp_path / "b") and time.monotonic() < deadline:
        time.sleep(0.05)
    (only,) = _objects(tmp_path / "b")
    assert [r["sessionId"] for r in _rows(only)] == ["s-000001", "s-000002"]
    assert batcher.status()["spooled_rows"] == 0


def test_object_names_are_time_partitioned_and_whole(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    batcher = UsageBatcher(str(tmp_path / "b"), max_rows=1, max_age_s=3600)
    batchers.append(batcher)
    batcher.export([_event(1)])
    (obj,) = _objects(tmp_path / "b")
    dt, hour = obj.parent.parent.name, obj.parent.name
    assert dt.startswith("dt=") and len(dt) == len("dt=2025-01-01") and hour.startswith("hour=")
    assert obj.name.endswith(".ndjson.gz")
    assert not list((tmp_path / "b").rglob("*.partial"))  # written aside, then renamed
    assert _rows(obj) == [payload(sessionId="s-000001")]


def test_only_usage_payloads_are_batched_once_each(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    batcher = UsageBatcher(str(tmp_path / "b"), max_rows=2, max_age_s=3600)
    batchers.append(batcher)
    agent = TelemetryEvent("start", "claude", session_id="x", event_id="agent-1", metadata={"k": 1})
    batcher.export([agent, _event(1), _event(1)])  # a follower re-sends what a crash left unconfirmed
    batcher.export([_event(1), _event(2)])
    (obj,) = _objects(tmp_path / "b")
    assert [r["sessionId"] for r in _rows(obj)] == ["s-000001", "s-000002"]


def test_spool_is_replayed_after_a_crash(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    crashed = UsageBatcher(str(tmp_path / "b"), max_rows=10, max_age_s=3600)
    crashed.export([_event(i) for i in range(3)])  # acknowledged to the follower: spooled and fsynced
    crashed.spool.close()  # the process died here: no shutdown, no batch written
    assert _objects(tmp_path / "b") == []
    restarted = UsageBatcher(str(tmp_path / "b"), max_rows=10, max_age_s=3600)
    batchers.append(restarted)
    assert restarted.status()["spooled_rows"] == 3
    restarted.flush()
    assert [r["sessionId"] for p in _objects(tmp_path / "b") for r in _rows(p)] == ["s-000000", "s-000001",
                                                                                     "s-000002"]


def test_replicas_share_a_destination_without_collisions(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    one = UsageBatcher(str(tmp_path / "b"), max_rows=1, max_age_s=3600, spool_dir=str(tmp_path / "s1"))
    two = UsageBatcher(str(tmp_path / "b"), max_rows=1, max_age_s=3600, spool_dir=str(tmp_path / "s2"))
    batchers.extend([one, two])
    for i in range(20):  # same millisecond, same partition: the names still differ
        one.export([_event(i)])
        two.export([_event(100 + i)])
    assert len(_objects(tmp_path / "b")) == 40


def test_one_spool_per_process(tmp_path: Path, batchers: list[UsageBatcher]) -> None:
    batchers.append(UsageBatcher(str(tmp_path / "b")))
    with pytest.raises(ValidationError, match="spool_dir"):
        UsageBatcher(str(tmp_path / "b"))


@pytest.mark.parametrize(("options", "field"), [
    ({}, "x.dest"), ({"dest": "d", "max_rows": 0}, "x.max_rows"), ({"dest": "d", "max_bytes": "10MB"}, "x.max_bytes"),
    ({"dest": "d", "max_age_s": 0}, "x.max_age_s"), ({"dest": "d", "colour": 1}, "x.colour"),
    ({"dest": "d", "compress": "yes"}, "x.compress"),
])
def test_bad_options_name_the_field(tmp_path: Path, options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build_usage_batches({k: (str(tmp_path / v) if k == "dest" else v) for k, v in options.items()}, "x")
    assert caught.value.field == field


# -- S3 through a real S3-protocol server on loopback ------------------------------------------------------

@pytest.fixture
def s3() -> Iterator[dict[str, Any]]:
    pytest.importorskip("s3fs", reason="s3fs is not installed (usage extra)")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing",
               "client_kwargs": {"region_name": "us-east-1"}}
    import boto3  # comes with moto

    boto3.client("s3", endpoint_url=options["endpoint_url"], aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="usage-bucket")
    yield options
    server.stop()


def test_s3_destination_and_lake(tmp_path: Path, s3: dict[str, Any], batchers: list[UsageBatcher]) -> None:
    batcher = UsageBatcher("s3://usage-bucket/vibe-tools", max_rows=3, max_age_s=3600,
                           spool_dir=str(tmp_path / "spool"), storage_options=s3)
    batchers.append(batcher)
    batcher.export([_event(i, command="plan" if i % 2 else "repo") for i in range(7)])
    batcher.flush()
    lake = Lake("s3://usage-bucket/vibe-tools", storage_options=s3)
    assert len(lake.files()) == 3 and all(f.startswith("s3://usage-bucket/vibe-tools/dt=") for f in lake.files())
    _, rows = lake.query("SELECT command, count(*) FROM usage GROUP BY 1 ORDER BY 1")
    assert rows == [("plan", 3), ("repo", 4)]
