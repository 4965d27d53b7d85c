"""Live fan-out: 50 dashboards (WebSocket subscribers) while events arrive at a steady 1,000 events/s.

A server (`start_api_server`, SQLite) in this process; a separate load process POSTs batches of 100
events every 100 ms over HTTP (1,000 events/s, paced against the clock, as agent hosts would send);
a third process holds 50 WebSocket subscriptions on `/ws` and counts every event it receives.

Two runs in the same invocation: subscribers asking for batched frames (`/ws?batch=true`, what the
dashboard uses) and subscribers taking one frame per event (`/ws`, the peer). Reported per run:
messages delivered of those expected (events x subscribers), messages the hub dropped for slow
consumers, and event-to-subscriber latency (event timestamp to receipt, ms resolution).

The server's writer flushes every 100 ms by default here, as `telemetry dashboard` runs it
(`--flush-ms 1000` for the SDK's default, which hands the hub once-a-second bursts of 1,000 events,
the whole of a subscriber's default buffer).

Target (issue 9): every event reaches all 50 subscribers at 1,000 events/s.

    python bench/bench_fanout.py                      # 20 s at 1,000 events/s, both runs
    python bench/bench_fanout.py --seconds 5 --rate 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import (
    emit,
    finish_subscribers,
    hold_subscribers,
    machine,
    remove_db,
    run_load,
    start_subscribers,
)
from bench_http import workload_events

SUBSCRIBERS = 50
BATCH = 100


def load_main(url: str, body_file: str, rate: float) -> None:
    """POST each pre-encoded batch at its due time (rate events/s); print timings as one JSON line."""
    bodies = [line.encode() for line in Path(body_file).read_text().splitlines()]
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    interval = BATCH / rate
    started = time.monotonic()
    late = 0
    errors = 0
    for index, body in enumerate(bodies):
        due = started + index * interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1
        conn.request("POST", "/api/events?wait=false", body, headers)
        response = conn.getresponse()
        response.read()
        errors += response.status != 202
    sent = time.monotonic()
    conn.request("POST", "/api/events?wait=true", json.dumps({"event_type": "custom", "category": "bench"}),
                 headers)
    conn.getresponse().read()
    print(json.dumps({"started": started, "sent": sent, "finished": time.monotonic(), "late_batches": late,
                      "errors": errors, "batches": len(bodies)}))


def subscribers_main(url: str, count: int, batched: bool, ready_file: str) -> None:
    """Hold `count` subscriptions until the done file appears; print events received and latency."""
    result = hold_subscribers(url, "/ws?batch=true" if batched else "/ws", count, ready_file, settle_s=2.0)
    print(json.dumps(result))


def run(db: Path, events: list[dict[str, Any]], workdir: Path, rate: float, batched: bool,
        flush_ms: int) -> dict[str, Any]:
    """One fan-out run: paced HTTP ingest while SUBSCRIBERS receive every event."""
    from vibekit_telemetry import Telemetry
    from vibekit_telemetry.server import start_api_server

    body_file = workdir / "bodies.jsonl"
    body_file.write_text("\n".join(json.dumps(events[i:i + BATCH], separators=(",", ":"))
                                   for i in range(0, len(events), BATCH)))
    ready = workdir / f"ready-{batched}"
    telemetry = Telemetry(db_path=str(db), block_timeout_ms=600_000, stream_flush_interval_ms=flush_ms)
    server = start_api_server(telemetry, port=0, rate_limit="off", max_stream_clients=SUBSCRIBERS + 10)
    try:
        subs = start_subscribers(__file__, [server.url, str(SUBSCRIBERS), "1" if batched else "0", str(ready)], ready)
        timing = run_load(__file__, [server.url, str(body_file), str(rate)])
        delivery = finish_subscribers(subs, ready)
        hub = server.app.state.hub.stats()
    finally:
        server.stop()
        telemetry.shutdown()
    expected = (len(events) + 1) * SUBSCRIBERS
    return {"batched_frames": batched, "events": len(events), "subscribers": SUBSCRIBERS, "flush_ms": flush_ms,
            "rate_target": rate, "rate_sent": len(events) / (timing["sent"] - timing["started"]),
            "late_batches": timing["late_batches"], "http_errors": timing["errors"],
            "messages_expected": expected, "messages_received": delivery["received"],
            "min_per_subscriber": delivery["min_received"], "messages_dropped": hub["dropped"],
            "delivered_fraction": delivery["received"] / expected,
            "latency_p50_ms": delivery["latency_p50_ms"], "latency_p99_ms": delivery["latency_p99_ms"]}


def main(argv: list[str] | None = None) -> None:
    """Run the batched and unbatched fan-out; print JSON and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second sent")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flush-ms", type=int, default=100,
                        help="the writer's flush interval (`telemetry dashboard` runs with 100 ms; the SDK default "
                             "is 1,000 ms, which delivers in once-a-second bursts)")
    args = parser.parse_args(argv)
    events = workload_events(int(args.rate * args.seconds))
    results: dict[str, Any] = {"machine": machine(), "runs": {}}
    summary = [f"live fan-out to {SUBSCRIBERS} WebSocket subscribers at {args.rate:,.0f} events/s for "
               f"{args.seconds:.0f} s ({len(events):,} events over HTTP, batches of {BATCH}, writer flush every "
               f"{args.flush_ms} ms)"]
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        for batched in (True, False):
            remove_db(db)
            result = run(db, events, workdir, args.rate, batched, args.flush_ms)
            results["runs"]["batched" if batched else "unbatched"] = result
            summary.append(
                f"  {'/ws?batch=true' if batched else '/ws (peer)    '}: {result['messages_received']:,} of "
                f"{result['messages_expected']:,} messages ({result['delivered_fraction']:.2%}), "
                f"{result['messages_dropped']:,} dropped, fewest per subscriber {result['min_per_subscriber']:,}, "
                f"latency p50 {result['latency_p50_ms']:.0f} ms p99 {result['latency_p99_ms']:.0f} ms, "
                f"sent at {result['rate_sent']:,.0f} ev/s")
    emit("fanout", results, summary)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--subscribers":
        subscribers_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5])
    else:
        main()
