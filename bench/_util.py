"""Shared helpers for the benchmarks: timing, percentiles, peak RSS, machine facts, the workload.

Every benchmark prints one JSON line (its results) and then a short human summary, so
`run_all.py` can collect the JSON and people can read the rest.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import re
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"

CATEGORIES = ("claude", "codex", "gemini", "opencode")
ACTIONS = ("code", "chat", "ask")
CHUNK_CHARS = 80
STREAMS_PER_SESSION = 20  # each session: 1 start, ~20 stream chunks (18..22), 1 end; 5% also an error


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[index])


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and mean of per-call nanosecond samples, in microseconds."""
    values = sorted(samples_ns)
    return {
        "n": len(values),
        "p50_us": percentile(values, 50) / 1000,
        "p90_us": percentile(values, 90) / 1000,
        "p99_us": percentile(values, 99) / 1000,
        "p999_us": percentile(values, 99.9) / 1000,
        "mean_us": sum(values) / len(values) / 1000 if values else float("nan"),
    }


def timer_overhead_ns(n: int = 200_000) -> float:
    """Median cost of two back-to-back perf_counter_ns calls (what every per-call sample includes)."""
    from time import perf_counter_ns

    samples = []
    for _ in range(n):
        a = perf_counter_ns()
        b = perf_counter_ns()
        samples.append(b - a)
    samples.sort()
    return float(samples[len(samples) // 2])


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """The facts a result needs next to it: cores, CPU model, Python and SQLite versions, date."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def emit(name: str, results: dict[str, Any], summary: list[str]) -> None:
    """Print the JSON line first (run_all.py reads it), then the human summary."""
    print(json.dumps({"bench": name, **results}, default=str), flush=True)
    for line in summary:
        print(line)
    sys.stdout.flush()


def median_page_ms(store: Any, filter_: Any, runs: int, page: int) -> float:
    """Median ms of `runs` get_sessions(filter_) calls, each checked to return a full page."""
    import statistics

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        assert len(store.get_sessions(filter_)) == page
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def ratio(ours: float, peer: float) -> float:
    """ours / peer, guarding against a zero peer."""
    return ours / peer if peer else float("nan")


# -- the workload -----------------------------------------------------------------------------------

class Workload:
    """A deterministic agent workload: sessions of start, ~20 stream chunks of 80 chars, some errors, end.

    Text comes from pre-built pools so generating a call costs next to nothing next to tracking it.
    """

    def __init__(self, seed: int = 1234) -> None:
        rng = random.Random(seed)
        alphabet = "abcdefghijklmnopqrstuvwxyz      ,.()=:_0123456789"
        self.chunks = ["".join(rng.choice(alphabet) for _ in range(CHUNK_CHARS)) for _ in range(4096)]
        self.prompts = [f"Fix the bug in module {i}: " + self.chunks[i][:40] for i in range(512)]
        self.rng = rng

    def sessions(self, total_events: int) -> Iterator[list[tuple[str, Any]]]:
        """Yield sessions as lists of (kind, payload) until total_events events have been produced."""
        rng, chunks, prompts = self.rng, self.chunks, self.prompts
        produced = 0
        n = 0
        while produced < total_events:
            category = CATEGORIES[n % len(CATEGORIES)]
            action = ACTIONS[n % len(ACTIONS)]
            calls: list[tuple[str, Any]] = [("start", (category, action, prompts[n % len(prompts)],
                                                       {"model": f"{category}-model", "attempt": n % 3}))]
            streams = STREAMS_PER_SESSION + rng.randint(-2, 2)
            failed = n % 20 == 7
            for i in range(streams):
                calls.append(("stream", chunks[(n * 31 + i) % len(chunks)]))
                if failed and i == streams // 2:
                    calls.append(("error", "RateLimitError: 429 Too Many Requests"))
            calls.append(("end", "error" if failed else "completed"))
            left = total_events - produced
            if len(calls) > left:
                calls = calls[:left]
            produced += len(calls)
            n += 1
            yield calls


def sqlite_files(path: Path) -> list[Path]:
    """The database file and its WAL and shared-memory companions."""
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def remove_db(path: Path) -> None:
    """Delete a SQLite database and its companions."""
    for p in sqlite_files(path):
        if p.exists():
            p.unlink()


Row = tuple[Any, ...]


def iter_rows(events: int, first_ts: int, step_ms: int = 1) -> Iterator[tuple[Row, list[Row]]]:
    """Yield (session row, event rows) per session: what the pipeline stores for the same workload.

    Session rows are final states in `sessions` column order; event rows are in schema.EVENT_COLUMNS
    order with ids and JSON made, as the writer makes them. Timestamps advance step_ms per event.
    """
    from vibekit_telemetry.events import END_STATUS_ALIASES
    from vibekit_telemetry.ids import uuid7

    ts = first_ts
    for calls in Workload().sessions(events):
        sid = uuid7(ts)
        category, action, prompt, metadata = calls[0][1]
        meta_json = json.dumps(metadata, separators=(",", ":"))
        start = ts
        streams = errors = 0
        status, end_time = "active", None
        rows: list[tuple[Any, ...]] = []
        for kind, payload in calls:
            ts += step_ms
            label = stream_data = meta = None
            if kind == "start":
                label, meta = prompt, meta_json
            elif kind == "stream":
                stream_data = payload
                streams += 1
            elif kind == "error":
                label = payload
                errors += 1
            else:
                status, end_time = END_STATUS_ALIASES[payload], ts
                meta = json.dumps({"status": status}, separators=(",", ":"))
            rows.append((uuid7(ts), sid, kind, category, action, label, None, stream_data, None, None,
                         ts, None, meta, None, "vibekit-telemetry", "0.0.0"))
        session = (sid, category, action, status, start, end_time,
                   float(end_time - start) if end_time else None, len(calls), streams, errors, ts, prompt,
                   None, None, meta_json)
        yield session, rows


SESSION_COLUMNS = ("id", "category", "action", "status", "start_time", "end_time", "duration", "event_count",
                   "stream_count", "error_count", "last_event_time", "label", "sandbox_id", "repo_url",
                   "metadata")
INSERT_SESSION = f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({', '.join('?' * 15)})"
INSERT_EVENT = ("INSERT INTO events (event_id, session_id, event_type, category, action, label, value, "
                "stream_data, sandbox_id, repo_url, timestamp, duration, metadata, context, service_name, "
                f"service_version) VALUES ({', '.join('?' * 16)})")


# -- servers and the processes that load them -------------------------------------------------------

_SERVING = re.compile(r"Serving .*? at http://127\.0\.0\.1:(\d+)")


def serve_api(db: Path | str, *args: str, startup_s: float = 60.0,
              config: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    """Start a real `telemetry api` on a free loopback port; return the process and its port once /health answers."""
    import http.client

    options = ["--config", str(config)] if config is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), *options, "api", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "1000", "NO_COLOR": "1"})
    assert process.stdout is not None
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = _SERVING.search(line)
        if match:
            port = int(match.group(1))
            while time.monotonic() < deadline:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        conn.close()
                        return process, port
                except OSError:
                    time.sleep(0.05)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("telemetry api did not start")


def start_subscribers(script: str, args: Sequence[str], ready: Path, timeout_s: float = 60.0) -> subprocess.Popen[str]:
    """Start `script --subscribers ARGS…`; return once it wrote `ready` (every subscriber connected)."""
    subs = subprocess.Popen([sys.executable, script, "--subscribers", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=BENCH_DIR)
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if subs.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"subscribers failed: {subs.stderr.read() if subs.stderr else ''}")
        time.sleep(0.05)
    return subs


def finish_subscribers(subs: subprocess.Popen[str], ready: Path) -> dict[str, Any]:
    """Tell the subscribers the load is over (`ready`.done); return the JSON line they print last."""
    Path(str(ready) + ".done").write_text("done")
    out, err = subs.communicate(timeout=120)
    if subs.returncode != 0:
        raise RuntimeError(err[-2000:])
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_load(script: str, args: Sequence[str], timeout_s: float = 1800) -> dict[str, Any]:
    """Run `script --load ARGS…` to its end; return the JSON line it printed last (its timings)."""
    load = subprocess.run([sys.executable, script, "--load", *args], capture_output=True, text=True,
                          cwd=BENCH_DIR, timeout=timeout_s)
    if load.returncode != 0:
        raise RuntimeError(load.stderr[-2000:])
    return json.loads(load.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_clients(script: Path | str, client_args: Sequence[Sequence[str]],
                timeout_s: float = 1800) -> tuple[float, list[dict[str, Any]]]:
    """Run `script --client ARGS…` once per entry together; return the go time and the JSON each printed last.

    Each client connects, prints `ready` and waits for a line on stdin: the clock starts once every
    one is connected, so no client's connection set-up is timed.
    """
    clients = [subprocess.Popen([sys.executable, str(script), "--client", *args], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR) for args in client_args]
    try:
        for client in clients:
            assert client.stdout is not None
            if client.stdout.readline().strip() != "ready":
                raise RuntimeError("a client did not connect")
        go = time.monotonic()
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()
        reports = [json.loads(c.communicate(timeout=timeout_s)[0].strip().splitlines()[-1]) for c in clients]
    finally:
        for client in clients:  # a failed run leaves no client behind
            if client.poll() is None:
                client.kill()
                client.wait()
    return go, reports


def merged_errors(reports: Sequence[dict[str, Any]]) -> dict[str, int]:
    """The clients' error counts (`errors`: status -> count) added up."""
    errors: dict[str, int] = {}
    for report in reports:
        for code, n in report["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return errors


def hold_subscribers(url: str, path: str, count: int, ready_file: str, *, settle_s: float,
                     max_s: float | None = None) -> dict[str, Any]:
    """Hold `count` WebSocket subscriptions to `path` until `ready_file`.done appears (or max_s passed).

    Writes `ready_file` once all are connected; returns events received (all, fewest per subscriber)
    and the event-to-receipt latency sampled on one subscriber.
    """
    import asyncio

    from websockets.asyncio.client import connect

    received = [0] * count
    latencies: list[float] = []
    stop = asyncio.Event()

    async def one(index: int, counter: list[int], connected: asyncio.Event) -> None:
        async with connect(url.replace("http://", "ws://") + path, max_queue=None, close_timeout=1) as ws:
            await ws.recv()
            counter[0] += 1
            if counter[0] == count:
                connected.set()
            while not stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                assert isinstance(message, str)
                # Counted without parsing; one subscriber parses a sample for latency, so that this
                # process, not the server, is never the bottleneck.
                events = message.count('{"type":"event"')
                received[index] += events
                if index == 0 and events:
                    document = json.loads(message)
                    first = document["messages"][0] if document["type"] == "batch" else document
                    if first.get("type") == "event":
                        latencies.append(time.time() * 1000 - first["event"]["timestamp"])

    async def run() -> None:
        connected = asyncio.Event()
        counter = [0]
        tasks = [asyncio.create_task(one(i, counter, connected)) for i in range(count)]
        await asyncio.wait_for(connected.wait(), 60)
        Path(ready_file).write_text("ready")
        deadline = time.monotonic() + max_s if max_s is not None else float("inf")
        done = Path(ready_file + ".done")
        while time.monotonic() < deadline and not done.exists():
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle_s)  # let the last frames arrive
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    latencies.sort()
    return {"received": sum(received), "min_received": min(received),
            "latency_p50_ms": percentile(latencies, 50), "latency_p99_ms": percentile(latencies, 99),
            "samples": len(latencies)}
