"""`telemetry api --pipeline DIR` as a real process: payloads acknowledged before a `kill -9` all reach batches."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from usage_support import payload

from servers import ServerProcess

pytest.importorskip("fsspec", reason="the usage extra is not installed: pip install 'vibekit-telemetry[usage]'")


def _serve(db: Path, batches: Path, *options: str) -> ServerProcess:
    return ServerProcess(db, "--pipeline", str(batches), *[f"--pipeline-option={o}" for o in options],
                         log_level="warning")


def _batched(batches: Path) -> list[str]:
    out = []
    for path in batches.glob("dt=*/hour=*/*.ndjson.gz"):
        out += [json.loads(line)["sessionId"] for line in gzip.decompress(path.read_bytes()).splitlines()]
    return out


def test_acknowledged_payloads_survive_kill_9_between_ack_and_flush(tmp_path: Path) -> None:
    db, batches = tmp_path / "server.db", tmp_path / "batches"
    # A long time limit for the first run: the kill surely comes before its batch is cut.
    server = _serve(db, batches, "max_age_s=3600", "max_rows=1000")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            acked = [f"s-{i}" for i in range(30)
                     if http.post("/api/pipeline", json={"data": payload(sessionId=f"s-{i}")}).status_code == 200]
    finally:
        server.kill()  # SIGKILL: no shutdown, the partial batch (under 100 rows, under 5 s) is not written
    assert len(acked) == 30
    assert _batched(batches) == []  # the kill came before the batch was cut
    # Default limits (5 s); the restart replays the spool and follows the store from its cursor.
    with _serve(db, batches):
        deadline = time.monotonic() + 60
        while sorted(set(_batched(batches))) != sorted(acked) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert sorted(set(_batched(batches))) == sorted(acked)
    assert len(_batched(batches)) == len(acked)  # and each once
