"""Reliability figures: several processes on one SQLite file, and a soak run with a flapping destination.

    python bench/bench_reliability.py multi [--per-process 250000]    # 4 processes x 250,000 events
    python bench/bench_reliability.py soak [--minutes 10]             # RSS and queue depth over time
    python bench/bench_reliability.py limits [--events 200000]        # cost of the disk and memory limits

`multi` measures one process writing its share alone (the peer, same run), then four at once into one
file, and checks that exactly 4 x N events and every session counter are stored. `soak` tracks a mixed
load (sessions of 1 start, 20 chunks, 1 end; bursts every minute) for the given minutes with a webhook
exporter whose server flips between up and 503 every 30 s; it samples RSS and queue depth every 5 s and
writes bench/results/soak.json and bench/results/soak.svg (the plot for the README).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _util import BENCH_DIR, RESULTS_DIR, emit

WRITER = BENCH_DIR.parent / "tests" / "reliability" / "multiwriter.py"


def _writers(db: Path, count: int, per_process: int) -> float:
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(WRITER), f"p{n}", str(db), str(per_process)],
                              stderr=subprocess.PIPE, text=True) for n in range(count)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"writer failed: {err[-2000:]}")
    return time.perf_counter() - started


def multi(per_process: int) -> None:
    """One process alone (the peer), then four at once on one file; counts checked exactly."""
    with tempfile.TemporaryDirectory() as tmp:
        alone_s = _writers(Path(tmp) / "alone.db", 1, per_process)
        db = Path(tmp) / "shared.db"
        shared_s = _writers(db, 4, per_process)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            bad = conn.execute("SELECT count(*) FROM sessions WHERE event_count != 50 OR stream_count != 48"
                               ).fetchone()[0]
    results = {"per_process": per_process, "stored": stored, "expected": 4 * per_process,
               "sessions_with_wrong_counters": bad, "alone_s": round(alone_s, 2),
               "alone_events_per_s": round(per_process / alone_s), "four_s": round(shared_s, 2),
               "four_events_per_s": round(4 * per_process / shared_s)}
    emit("reliability_multi", results, [
        f"1 process alone: {per_process:,} events in {alone_s:.1f} s ({per_process / alone_s:,.0f}/s)",
        f"4 processes, one file: {4 * per_process:,} in {shared_s:.1f} s ({4 * per_process / shared_s:,.0f}/s); "
        f"stored {stored:,} (expected {4 * per_process:,}), sessions with wrong counters: {bad}",
    ])


class _Flapping(BaseHTTPRequestHandler):
    up = True
    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if _Flapping.up:
            _Flapping.received += 1
            self.send_response(200)
        else:
            self.send_response(503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        import os

        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1_048_576


def soak(minutes: float, rate: float) -> None:
    """Mixed load at `rate` events/s for `minutes`, a flapping webhook; RSS and queue depth sampled."""
    from vibekit_telemetry import Telemetry

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flapping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    tmp = tempfile.TemporaryDirectory()
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": f"{tmp.name}/soak.db"}},
        {"type": "webhook", "options": {"url": url, "retry_base_s": 0.2, "retry_max_s": 5,
                                        "failure_threshold": 3, "open_timeout_s": 5}},
    ], stream_flush_interval_ms=200)
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def load() -> None:
        n = 0
        while not stop.is_set():
            burst = 10 if int(time.monotonic() - started) % 60 < 5 else 1  # a 5 s burst every minute
            sid = telemetry.track_start("claude", "code", f"soak {n}")
            for i in range(20):
                telemetry.track_stream(sid, f"chunk {i} " + "x" * 80)
            telemetry.track_end(sid)
            n += 1
            time.sleep(22 / rate / burst)

    producer = threading.Thread(target=load, daemon=True)
    producer.start()
    deadline = started + minutes * 60
    while time.monotonic() < deadline:
        elapsed = time.monotonic() - started
        _Flapping.up = int(elapsed // 30) % 2 == 0
        health = telemetry.get_health_status()
        samples.append({"t_s": round(elapsed, 1), "rss_mb": round(_rss_mb(), 2),
                        "queue_depth": health["queue"]["depth"],
                        "exporter_lag": health["exporters"][0].get("lag") or 0,
                        "written": health["events"]["written"], "dropped": health["dropped_total"],
                        "breaker_open": int(health["exporters"][0]["breaker"] != "closed")})
        time.sleep(5)
    stop.set()
    producer.join()
    telemetry.flush(60)
    final = telemetry.get_health_status()
    telemetry.shutdown()
    server.shutdown()
    tmp.cleanup()
    half = len(samples) // 2
    first, second = samples[1:half] or samples, samples[half:] or samples
    results = {"minutes": minutes, "rate": rate, "samples": samples,
               "rss_mb_first_half_max": max(s["rss_mb"] for s in first),
               "rss_mb_second_half_max": max(s["rss_mb"] for s in second),
               "queue_depth_max": max(s["queue_depth"] for s in samples),
               "written": final["events"]["written"], "dropped_total": final["dropped_total"],
               "webhook_batches_received": _Flapping.received}
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "soak.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (RESULTS_DIR / "soak.svg").write_text(_svg(samples), encoding="utf-8")
    emit("reliability_soak", {k: v for k, v in results.items() if k != "samples"}, [
        f"{minutes} min at ~{rate:.0f} events/s, webhook flapping every 30 s: written {results['written']:,}, "
        f"dropped {results['dropped_total']}",
        f"RSS max first half {results['rss_mb_first_half_max']} MB, second half "
        f"{results['rss_mb_second_half_max']} MB; queue depth max {results['queue_depth_max']}",
        f"plot: {RESULTS_DIR / 'soak.svg'}",
    ])


def _svg(samples: list[dict[str, float]]) -> str:
    """RSS (MB) and queue depth over time as a small SVG line plot (no plotting library needed)."""
    width, height, pad = 720, 260, 40
    t_max = max(s["t_s"] for s in samples) or 1
    rss_max = max(s["rss_mb"] for s in samples) * 1.2 or 1
    depth_max = max(max(s["queue_depth"] for s in samples) * 1.2, 100)

    def line(key: str, top: float, color: str) -> str:
        points = " ".join(f"{pad + s['t_s'] / t_max * (width - 2 * pad):.1f},"
                          f"{height - pad - s[key] / top * (height - 2 * pad):.1f}" for s in samples)
        return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>'

    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12"><rect width="100%" height="100%" fill="white"/>'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
            f'{line("rss_mb", rss_max, "#1f77b4")}{line("queue_depth", depth_max, "#d62728")}'
            f'<text x="{pad}" y="20" fill="#1f77b4">RSS (MB, 0..{rss_max:.0f})</text>'
            f'<text x="{pad + 200}" y="20" fill="#d62728">queue depth (0..{depth_max:.0f})</text>'
            f'<text x="{width - pad - 120}" y="{height - 10}">time: 0..{t_max / 60:.1f} min</text></svg>')


def _ingest(db: Path, events: int, limits: bool) -> float:
    """Seconds to track `events` (sessions of 1 start, 20 chunks, 1 end) and flush them."""
    from vibekit_telemetry import Telemetry

    reliability: dict[str, Any] = ({"min_free_disk_mb": 50, "disk_check_interval_ms": 1000,
                                    "memory_limit": 512 * 1024 * 1024} if limits else {"min_free_disk_mb": 0})
    telemetry = Telemetry(db_path=str(db), reliability=reliability, max_queue_size=events + 1000)
    started = time.perf_counter()
    for _ in range(events // 22):
        sid = telemetry.track_start("claude", "code", "limits")
        for j in range(20):
            telemetry.track_stream(sid, f"chunk {j} " + "x" * 60)
        telemetry.track_end(sid)
    assert telemetry.flush(600)
    elapsed = time.perf_counter() - started
    health = telemetry.get_health_status()
    telemetry.shutdown()
    if health["dropped_total"]:
        raise SystemExit(f"events dropped: {health['dropped']}")
    return elapsed


def limits(events: int, runs: int) -> None:
    """Ingest with the disk check and memory_limit on, and off (the peer), interleaved in one run."""
    import statistics

    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            off.append(events / _ingest(Path(tmp) / f"off{run}.db", events, False))
            on.append(events / _ingest(Path(tmp) / f"on{run}.db", events, True))
    results = {"events": events, "runs": runs, "limits_on_events_per_s": [round(x) for x in on],
               "limits_off_events_per_s": [round(x) for x in off],
               "median_on": round(statistics.median(on)), "median_off": round(statistics.median(off)),
               "ratio": round(statistics.median(on) / statistics.median(off), 3)}
    emit("reliability_limits", results, [
        f"limits on (free-disk check + memory_limit 512 MB): median {results['median_on']:,} events/s",
        f"limits off (peer, same run): median {results['median_off']:,} events/s; ratio {results['ratio']}",
    ])


def main() -> None:
    """Parse the mode and run it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("multi")
    m.add_argument("--per-process", type=int, default=250_000)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=10.0)
    s.add_argument("--rate", type=float, default=1000.0, help="events per second outside bursts")
    lim = sub.add_parser("limits")
    lim.add_argument("--events", type=int, default=220_000)
    lim.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.mode == "multi":
        multi(args.per_process)
    elif args.mode == "limits":
        limits(args.events, args.runs)
    else:
        soak(args.minutes, args.rate)


if __name__ == "__main__":
    main()
