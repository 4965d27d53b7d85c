"""HTTP batch ingest against in-process track_batch, and live fan-out to 50 WebSocket subscribers.

in-process: a fresh Telemetry on a new SQLite file; the workload (bench/_util.Workload: sessions of a
start, ~20 stream chunks, an end) as event dicts through `track_batch` in batches, timed from the
first call to flush() returning.

http: the same events, the same store configuration, served by `start_api_server` in this process;
a separate load process on loopback sends the batches as pre-encoded JSON over keep-alive connections
(http.client, CONNECTIONS in parallel) and finishes with one `?wait=true` request, so the clock stops
when every event is written. p50/p99 are per-request latencies seen by the load process.

fan-out: 50 WebSocket subscribers (asyncio, one separate process) on `/ws` while the load process
sends batches of 100; reports ingest rate with subscribers, messages delivered, messages dropped for
slow consumers, and event-to-subscriber latency (server timestamp to receipt, ms resolution).

Target (DESIGN.md): HTTP batch ingest >= 0.7 x in-process ingest, measured in the same run.

    python bench/bench_http.py                     # 100,000 events per run, batches of 100 and 1,000
    python bench/bench_http.py --events 20000 --fanout-events 5000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _util import (
    Workload,
    emit,
    finish_subscribers,
    hold_subscribers,
    machine,
    percentile,
    ratio,
    remove_db,
    run_load,
    start_subscribers,
)

CONNECTIONS = 2
SUBSCRIBERS = 50


def workload_events(total: int) -> list[dict[str, Any]]:
    """Return the workload as JSON-ready event dicts (what an agent host would POST)."""
    events: list[dict[str, Any]] = []
    for calls in Workload().sessions(total):
        sid = uuid.uuid4().hex
        category = action = ""
        for kind, payload in calls:
            if kind == "start":
                category, action, prompt, metadata = payload
                events.append({"event_type": "start", "session_id": sid, "category": category,
                               "action": action, "label": prompt, "metadata": metadata})
            elif kind == "stream":
                events.append({"event_type": "stream", "session_id": sid, "stream_data": payload})
            elif kind == "error":
                events.append({"event_type": "error", "session_id": sid, "label": payload})
            else:
                events.append({"event_type": "end", "session_id": sid, "metadata": {"status": payload}})
    return events


def _telemetry(db: Path) -> Any:
    from vibekit_telemetry import Telemetry

    # Sustained ingest outruns the writer: callers wait for room rather than drop (as in bench_ingest).
    return Telemetry(db_path=str(db), block_timeout_ms=600_000)


def run_in_process(db: Path, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """Rate of track_batch + flush into a fresh SQLite store."""
    telemetry = _telemetry(db)
    batches = [events[i:i + batch] for i in range(0, len(events), batch)]
    started = time.perf_counter()
    accepted = sum(telemetry.track_batch(chunk) for chunk in batches)
    caller = time.perf_counter() - started
    telemetry.flush(timeout=600)
    elapsed = time.perf_counter() - started
    written = telemetry.get_health_status()["events"]["written"]
    telemetry.shutdown()
    return {"events": len(events), "accepted": accepted, "written": written, "seconds": elapsed,
            "caller_seconds": caller, "events_per_s": written / elapsed}


# -- the load process -------------------------------------------------------------------------------

def load_main(url: str, body_file: str, connections: int) -> None:
    """Send every pre-encoded body over keep-alive connections; print timings as one JSON line.

    Each connection sends its own share of the sessions, in order (as one agent host would): a
    session's stream events never overtake its start on another connection.
    """
    lines = Path(body_file).read_text().splitlines()
    shares = [[line.split("\t", 1)[1].encode() for line in lines if int(line.split("\t", 1)[0]) == c]
              for c in range(connections)]
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}

    def worker(bodies: list[bytes]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        local: list[float] = []
        for body in bodies:
            sent = time.perf_counter()
            conn.request("POST", "/api/events", body, headers)
            response = conn.getresponse()
            response.read()
            local.append(time.perf_counter() - sent)
            if response.status not in (200, 202):  # 200: committed (the default since #6), 202: queued
                errors.append(response.status)
        conn.close()
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_all = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    conn.request("POST", "/api/events?wait=true", json.dumps({"event_type": "custom", "category": "bench"}),
                 headers)
    conn.getresponse().read()
    finished = time.monotonic()
    latencies.sort()
    print(json.dumps({"started": started, "sent_all": sent_all, "finished": finished,
                      "requests": len(latencies), "errors": errors[:10], "error_count": len(errors),
                      "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}))


def _encode_bodies(events: list[dict[str, Any]], batch: int, path: Path, connections: int = CONNECTIONS) -> None:
    """Write `connection<TAB>json batch` lines: sessions dealt to connections whole, batches in order."""
    per_connection: list[list[dict[str, Any]]] = [[] for _ in range(connections)]
    owner: dict[str, int] = {}
    for event in events:
        sid = event["session_id"]
        if sid not in owner:
            owner[sid] = len(owner) % connections
        per_connection[owner[sid]].append(event)
    with path.open("w") as out:
        for conn, share in enumerate(per_connection):
            for i in range(0, len(share), batch):
                out.write(f"{conn}\t" + json.dumps(share[i:i + batch], separators=(",", ":")) + "\n")


def run_http(db: Path, events: list[dict[str, Any]], batch: int, workdir: Path) -> dict[str, Any]:
    """Rate of HTTP batch ingest (separate load process) + final flush into a fresh SQLite store."""
    from vibekit_telemetry.server import start_api_server

    body_file = workdir / f"bodies-{batch}.jsonl"
    _encode_bodies(events, batch, body_file)
    telemetry = _telemetry(db)
    server = start_api_server(telemetry, port=0, rate_limit="off")
    try:
        timing = run_load(__file__, [server.url, str(body_file), str(CONNECTIONS)])
        written = telemetry.get_health_status()["events"]["written"] - 1  # less the final flush marker
    finally:
        server.stop()
        telemetry.shutdown()
    elapsed = timing["finished"] - timing["started"]
    return {"events": len(events), "written": written, "batch": batch, "connections": CONNECTIONS,
            "requests": timing["requests"], "errors": timing["error_count"], "seconds": elapsed,
            "send_seconds": timing["sent_all"] - timing["started"], "events_per_s": written / elapsed,
            "p50_ms": timing["p50_ms"], "p99_ms": timing["p99_ms"]}


# -- fan-out ----------------------------------------------------------------------------------------

def subscribers_main(url: str, count: int, seconds: float, ready_file: str) -> None:
    """Hold `count` WebSocket subscriptions for up to `seconds`; print delivery counts and latency."""
    print(json.dumps(hold_subscribers(url, "/ws?batch=true", count, ready_file, settle_s=1.0, max_s=seconds)))


def run_fanout(db: Path, events: list[dict[str, Any]], workdir: Path, buffer: int) -> dict[str, Any]:
    """Ingest batches of 100 over HTTP while 50 WebSocket subscribers receive every event."""
    from vibekit_telemetry.server import start_api_server

    body_file = workdir / "bodies-fanout.jsonl"
    _encode_bodies(events, 100, body_file)
    ready = workdir / "subscribers.ready"
    telemetry = _telemetry(db)
    server = start_api_server(telemetry, port=0, rate_limit="off", max_stream_clients=SUBSCRIBERS + 10,
                              stream_buffer=buffer)
    try:
        subs = start_subscribers(__file__, [server.url, str(SUBSCRIBERS), "600", str(ready)], ready)
        timing = run_load(__file__, [server.url, str(body_file), str(CONNECTIONS)])
        delivery = finish_subscribers(subs, ready)
        hub = server.app.state.hub.stats()
        written = telemetry.get_health_status()["events"]["written"] - 1
    finally:
        server.stop()
        telemetry.shutdown()
    elapsed = timing["finished"] - timing["started"]
    expected = (len(events) + 1) * SUBSCRIBERS
    return {"events": len(events), "written": written, "subscribers": SUBSCRIBERS, "buffer": buffer,
            "seconds": elapsed,
            "events_per_s": written / elapsed, "p50_ms": timing["p50_ms"], "p99_ms": timing["p99_ms"],
            "messages_expected": expected, "messages_received": delivery["received"],
            "messages_dropped": hub["dropped"], "delivered_fraction": delivery["received"] / expected,
            "delivery_latency_p50_ms": delivery["latency_p50_ms"],
            "delivery_latency_p99_ms": delivery["latency_p99_ms"]}


def main(argv: list[str] | None = None) -> None:
    """Run in-process and HTTP ingest for each batch size, then the fan-out; print JSON and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batches", default="100,1000")
    parser.add_argument("--fanout-events", type=int, default=20_000)
    parser.add_argument("--stream-buffer", type=int, default=1000, help="messages buffered per subscriber")
    args = parser.parse_args(argv)
    events = workload_events(args.events)
    results: dict[str, Any] = {"machine": machine(), "events": len(events), "runs": {}}
    summary = [f"HTTP ingest ({len(events):,} events, SQLite, {CONNECTIONS} keep-alive connections)"]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        for batch in (int(b) for b in args.batches.split(",")):
            remove_db(db)
            local = run_in_process(db, events, batch)
            remove_db(db)
            remote = run_http(db, events, batch, workdir)
            results["runs"][str(batch)] = {"in_process": local, "http": remote,
                                           "ratio": ratio(remote["events_per_s"], local["events_per_s"])}
            summary.append(
                f"  batch {batch:>5}: in-process {local['events_per_s']:>9,.0f} ev/s | HTTP "
                f"{remote['events_per_s']:>9,.0f} ev/s ({results['runs'][str(batch)]['ratio']:.2f}x, target "
                f">= 0.70) | request p50 {remote['p50_ms']:.1f} ms, p99 {remote['p99_ms']:.1f} ms")
        remove_db(db)
        fan = run_fanout(db, workload_events(args.fanout_events), workdir, args.stream_buffer)
        results["fanout"] = fan
        summary.append(
            f"  fan-out to {fan['subscribers']} WebSocket subscribers ({fan['events']:,} events, batches of 100): "
            f"ingest {fan['events_per_s']:,.0f} ev/s, {fan['messages_received']:,} of "
            f"{fan['messages_expected']:,} messages delivered ({fan['delivered_fraction']:.0%}), "
            f"{fan['messages_dropped']:,} dropped for slow consumers, delivery p50 "
            f"{fan['delivery_latency_p50_ms']:.0f} ms p99 {fan['delivery_latency_p99_ms']:.0f} ms")
    emit("http", results, summary)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--subscribers":
        subscribers_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        main()
