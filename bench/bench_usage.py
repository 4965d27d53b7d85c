"""Usage pipeline: payloads/s accepted by POST /api/pipeline (durable), and lake query latency.

http: a Telemetry on a new SQLite file with the usage-batches exporter, served by start_api_server in
this process; a separate load process sends single pre-encoded payloads over CONNECTIONS keep-alive
connections on loopback; every 200 means committed. Peer, same run, same server: one event per
request to POST /api/events (the same durable machinery without the whitelist). At the end the
batcher is shut down and the rows it wrote are counted (they must equal the payloads accepted).

lake: --lake-rows synthetic payloads (commands, providers, 2% errors, 30 days) written by DuckDB as
gzip NDJSON objects of 250,000 rows under dt=/hour= partitions; `Lake.stats()` (all five questions)
and one GROUP BY through `Lake.query`, medians of 3. Peer: the same GROUP BY by DuckDB over a Parquet
copy of the same rows (the columnar best case).

    python bench/bench_usage.py                          # 5,000 payloads each way, 1M lake rows
    python bench/bench_usage.py --lake-rows 10000000     # the 10M figure
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, machine, ratio

CONNECTIONS = 4
CHUNK_ROWS = 250_000

LOADER = r"""
import http.client, json, sys, threading, time
port, path, n, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bodies = [line.encode() for line in sys.stdin.read().splitlines()]
codes, lat = [], []
def run(part):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for body in part:
        t = time.perf_counter()
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse(); r.read()
        lat.append(time.perf_counter() - t); codes.append(r.status)
threads = [threading.Thread(target=run, args=(bodies[i::conns],)) for i in range(conns)]
t0 = time.perf_counter()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"seconds": time.perf_counter() - t0, "ok": codes.count(200), "n": len(codes),
                  "lat": sorted(lat)}))
"""


def _payload(i: int) -> dict[str, Any]:
    return {"eventName": "command_executed", "userId": f"user-{i % 500}", "sessionId": f"s-{i}",
            "timestamp": "2025-03-01T10:00:00.000Z", "toolVersion": "1.4.0", "command": ("plan", "repo", "web")[i % 3],
            "duration": 100.0 + i % 900, "promptTokens": 1200, "completionTokens": 300, "provider": "gemini",
            "model": "gemini-2.5-pro", "options": {"debug": True}, "hasError": False}


def _load(port: int, path: str, bodies: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", LOADER, str(port), path, str(len(bodies)), str(CONNECTIONS)],
                         input="\n".join(bodies), capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    lat = result.pop("lat")
    result["p50_ms"] = lat[len(lat) // 2] * 1000
    result["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    result["per_s"] = result["ok"] / result["seconds"]
    return result


def bench_http(n: int, work: Path) -> dict[str, Any]:
    from vibekit_telemetry import Telemetry

    telemetry = Telemetry(storage=[{"type": "sqlite", "options": {"path": str(work / "server.db")}},
                                   {"type": "usage-batches", "options": {"dest": str(work / "batches")}}])
    server = telemetry.start_api_server(port=0, rate_limit="off")
    port = int(server.url.rsplit(":", 1)[1])
    try:
        pipeline = _load(port, "/api/pipeline", [json.dumps({"data": _payload(i)}) for i in range(n)])
        events = _load(port, "/api/events", [json.dumps({"event_type": "custom", "category": "usage",
                                                         "action": "plan", "metadata": _payload(i)})
                                             for i in range(n)])
    finally:
        server.stop()
        telemetry.shutdown()
    batched = sum(len(__import__("gzip").decompress(p.read_bytes()).splitlines())
                  for p in (work / "batches").glob("dt=*/hour=*/*.ndjson.gz"))
    return {"pipeline": pipeline, "events_peer": events, "ratio": ratio(pipeline["per_s"], events["per_s"]),
            "batched_rows": batched}


def _median(fn: Any, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_lake(rows: int, work: Path) -> dict[str, Any]:
    import duckdb

    from vibekit_telemetry.usage.lake import Lake

    root = work / "lake"
    conn = duckdb.connect()
    t0 = time.perf_counter()
    for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
        count = min(CHUNK_ROWS, rows - start)
        day = 1 + chunk % 28
        part = root / f"dt=2025-02-{day:02d}" / "hour=00"
        part.mkdir(parents=True, exist_ok=True)
        conn.execute(f"""COPY (SELECT CASE WHEN i % 50 = 0 THEN 'command_error' ELSE 'command_executed' END
                AS "eventName", 'user-' || (i % 20000) AS "userId", 's-' || i AS "sessionId",
                strftime(TIMESTAMP '2025-02-{day:02d}' + to_milliseconds(i % 86400000), '%Y-%m-%dT%H:%M:%S.%gZ')
                AS "timestamp", '1.' || (i % 5) || '.0' AS "toolVersion",
                ['plan', 'repo', 'web', 'doc', 'browser'][1 + i % 5] AS command, 50.0 + (i * 7919) % 20000 AS duration,
                (i % 4000) AS "promptTokens", (i % 900) AS "completionTokens",
                ['gemini', 'openai', 'anthropic'][1 + i % 3] AS provider, 'model-' || (i % 7) AS model,
                {{'debug': i % 2 = 0}} AS options, i % 50 = 0 AS "hasError",
                CASE WHEN i % 50 = 0 THEN 'ProviderError' END AS "errorType"
            FROM range({start}, {start + count}) t(i))
            TO '{part}/chunk-{chunk:05d}.ndjson.gz' (FORMAT json, COMPRESSION gzip)""")
    generated_s = time.perf_counter() - t0
    lake = Lake(str(root))
    group = "SELECT command, count(*), quantile_cont(duration, 0.95) FROM usage GROUP BY 1"
    stats_s = _median(lake.stats)
    query_s = _median(lambda: lake.query(group))
    parquet = work / "lake.parquet"
    lake.export(str(parquet), "parquet")
    peer = duckdb.connect()
    peer.execute(f"CREATE VIEW usage AS SELECT * FROM read_parquet('{parquet}')")
    parquet_s = _median(lambda: peer.execute(group).fetchall())
    size = sum(p.stat().st_size for p in root.rglob("*.gz"))
    return {"rows": rows, "objects": len(list(root.rglob("*.gz"))), "bytes": size, "generated_s": generated_s,
            "stats_s": stats_s, "group_by_s": query_s, "parquet_group_by_s": parquet_s,
            "ratio_vs_parquet": ratio(parquet_s, query_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payloads", type=int, default=5000)
    parser.add_argument("--lake-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-http", action="store_true", help="only the lake part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    try:
        http = bench_http(args.payloads, work) if not args.skip_http else None
        if http is None:
            lake = bench_lake(args.lake_rows, work)
            emit("usage-lake", {"machine": machine(), "lake": lake}, [
                f"lake {lake['rows']:,} payloads: stats {lake['stats_s']:.2f} s, GROUP BY {lake['group_by_s']:.2f} s; "
                f"Parquet {lake['parquet_group_by_s']:.3f} s"])
            return
        lake = bench_lake(args.lake_rows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p, e = http["pipeline"], http["events_peer"]
    emit("usage", {"machine": machine(), "http": http, "lake": lake}, [
        f"POST /api/pipeline: {p['per_s']:,.0f} payloads/s (p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms), "
        f"{p['ok']}/{p['n']} committed; batched rows {http['batched_rows']}",
        f"peer POST /api/events one event per request: {e['per_s']:,.0f}/s (p50 {e['p50_ms']:.1f} ms); "
        f"ratio {http['ratio']:.2f}",
        f"lake {lake['rows']:,} payloads in {lake['objects']} objects ({lake['bytes'] / 1e6:.0f} MB gz): "
        f"stats {lake['stats_s']:.2f} s, GROUP BY {lake['group_by_s']:.2f} s; same GROUP BY over Parquet "
        f"{lake['parquet_group_by_s']:.3f} s",
    ])


if __name__ == "__main__":
    main()
