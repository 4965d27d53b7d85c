"""Live streams across replicas: how long from a POST to one replica until a WebSocket on another sees it.

Three `telemetry api` processes on loopback: replicas A and B on one PostgreSQL schema, and a single
server on SQLite (the peer: the hub fed by its own writer, no replicas). A WebSocket client listens
on A (and on the SQLite server); each round POSTs one event and times POST start -> the event on
the WebSocket, which includes the POST's durable commit (the server answers after it). The three
paths alternate round by round:

- `pg B -> ws A`: posted to the other replica (NOTIFY, then A reads the change log);
- `pg A -> ws A`: posted to the same replica (its own commit wakes its feed, no NOTIFY round trip);
- `sqlite -> ws`: one server on SQLite (the writer hands events to the hub directly);
- `pg POST only`: the POST to B alone (answered after the commit), the part of the first two that
  is not the stream's.

    python bench/bench_replica_stream.py                      # 40 rounds
    python bench/bench_replica_stream.py --rounds 100 --database-url postgresql://…/db
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from _util import emit, machine

KEY = "bench-replica-key-0123456789"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    process = subprocess.Popen([sys.executable, "-m", "vibekit_telemetry.cli", "api", "--port", str(port),
                                "--log-level", "warning", "--api-key", f"{KEY}:ingest+read", "--rate-limit", "off"],
                               cwd=cwd, env={**os.environ, "NO_COLOR": "1", **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _round(ws: Any, post_url: str, http: httpx.Client, event_id: str) -> float:
    """POST one event, wait for it on the WebSocket; milliseconds."""
    started = time.perf_counter()
    answer = http.post(post_url + "/api/events", json={"event_type": "custom", "category": "bench",
                                                       "label": event_id, "event_id": event_id})
    answer.raise_for_status()
    while True:
        message = json.loads(ws.recv(timeout=30))
        if message.get("type") == "event" and message["event"]["event_id"] == event_id:
            return (time.perf_counter() - started) * 1000


def main() -> None:
    """Run the rounds; print one JSON line and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    import psycopg

    schema = "vk_bench_" + uuid.uuid4().hex[:10]
    admin = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    pg_url = f"{admin}{'&' if '?' in admin else '?'}options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-replica-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        (a, url_a), (b, url_b) = (_server({"TELEMETRY_DATABASE_URL": pg_url}, tmp) for _ in range(2))
        lite, url_lite = _server({"TELEMETRY_DB_PATH": str(tmp / "lite.db")}, tmp)
        processes += [a, b, lite]
        headers = {"X-API-Key": KEY}
        samples: dict[str, list[float]] = {"pg B -> ws A": [], "pg A -> ws A": [], "sqlite -> ws": [],
                                           "pg POST only": []}
        ws_url = "/ws?channel=category:bench"
        with (connect(url_a.replace("http", "ws") + ws_url, additional_headers=headers) as ws_a,
              connect(url_lite.replace("http", "ws") + ws_url, additional_headers=headers) as ws_lite,
              httpx.Client(headers=headers, timeout=30) as http):
            for ws in (ws_a, ws_lite):
                json.loads(ws.recv(timeout=30))  # connected
            for r in range(args.rounds + 3):  # the first 3 rounds warm up and are not counted
                for name, ws, post in (("pg B -> ws A", ws_a, url_b), ("pg A -> ws A", ws_a, url_a),
                                       ("sqlite -> ws", ws_lite, url_lite)):
                    ms = _round(ws, post, http, f"{name[:2]}-{r}-{uuid.uuid4().hex[:6]}")
                    if r >= 3:
                        samples[name].append(ms)
                started = time.perf_counter()
                http.post(url_b + "/api/events", json={"event_type": "custom", "category": "other",
                                                       "event_id": f"post-{r}-{uuid.uuid4().hex[:6]}"})
                if r >= 3:
                    samples["pg POST only"].append((time.perf_counter() - started) * 1000)
        medians = {k: round(statistics.median(v), 1) for k, v in samples.items()}
        p90 = {k: round(sorted(v)[max(0, int(len(v) * 0.9) - 1)], 1) for k, v in samples.items()}
        emit("replica_stream", {"rounds": args.rounds, "machine": machine(), "median_ms": medians, "p90_ms": p90},
             [f"{name:14} median {medians[name]:7.1f} ms   p90 {p90[name]:7.1f} ms" for name in samples])
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
