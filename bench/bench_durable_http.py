"""Durable HTTP ingest (`telemetry api`, 200 only after the commit) against in-process track_batch.

http (durable): a real `telemetry api` server process on loopback (`--rate-limit off`, otherwise the
defaults, so its commits are made by its writer process) on a fresh SQLite file; 4 client processes,
each with one keep-alive connection, post pre-encoded batches of 100 events to POST /api/events one
after another and wait for each answer (200 once the batch is committed). Sessions are dealt to the
clients whole (one session = one batch here), so a session's events never race each other. The clock
runs from the moment every client is connected and told to go until the last answer arrives: every
acknowledged event is then durable, which the run checks by counting the rows in the database before
the server stops.

http (fire-and-forget): the same with `?wait=false` (202 once queued); the clock stops when one final
durable request (queued behind all of them) is answered, i.e. when everything is committed.

in-process: the same event dicts through `Telemetry.track_batch` in batches of 100 on one thread, into
a fresh SQLite file with the same (default) configuration, timed from the first call until every
batch is committed (the writer's queue drained: what the server's 200 promises; the text-index tail
that flush() adds on top, and the server indexes in the background, is reported beside). Its own
subprocess.

The three run interleaved, `--runs` times; the report quotes medians. Request latency is what the
clients see (p50 and p99 over every request of a run).

Target (issue 6, part 3): durable HTTP events/s >= 0.7 x in-process track_batch.

    python bench/bench_durable_http.py                  # 1,000 sessions of 100 events, 3 runs
    python bench/bench_durable_http.py --sessions 200 --runs 1
    python bench/bench_durable_http.py --compare-writer   # and a server with --no-writer-process, same runs
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import (
    BENCH_DIR,
    emit,
    machine,
    merged_errors,
    peak_rss_mb,
    percentile,
    ratio,
    remove_db,
    run_clients,
    serve_api,
)
from bench_chain_ingest import ACTIONS, CATEGORIES, chunk_pool

CLIENTS = 4
BATCH = 100


def workload(sessions: int, chunks: int) -> list[list[dict[str, Any]]]:
    """Sessions as lists of JSON-ready event dicts: a start, `chunks` stream events of 90 chars, an end."""
    pool = chunk_pool()
    out: list[list[dict[str, Any]]] = []
    for n in range(sessions):
        sid = f"bench-{n:07d}"
        category = CATEGORIES[n % len(CATEGORIES)]
        events: list[dict[str, Any]] = [{
            "event_type": "start", "session_id": sid, "category": category, "action": ACTIONS[n % len(ACTIONS)],
            "label": f"Fix the bug in module {n % 512}: " + pool[n % 512][:40],
            "metadata": {"model": f"{category}-model", "attempt": n % 3}}]
        events += [{"event_type": "stream", "session_id": sid, "stream_data": pool[(n * 31 + i) % len(pool)]}
                   for i in range(chunks)]
        events.append({"event_type": "end", "session_id": sid, "metadata": {"status": "completed"}})
        out.append(events)
    return out


def bodies_per_client(sessions: list[list[dict[str, Any]]], clients: int) -> list[list[bytes]]:
    """Each client's request bodies, in order: its sessions' events in batches of BATCH."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(clients)]
    for n, events in enumerate(sessions):
        shares[n % clients].extend(events)
    return [[json.dumps(share[i:i + BATCH], separators=(",", ":")).encode() for i in range(0, len(share), BATCH)]
            for share in shares]


# -- in-process -------------------------------------------------------------------------------------

def run_in_process(db: Path, sessions: int, chunks: int, redact: bool) -> dict[str, Any]:
    """track_batch in batches of BATCH on one thread, then flush(); events/s of what was written."""
    from vibekit_telemetry import Telemetry

    events = [e for s in workload(sessions, chunks) for e in s]
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    # The same chain as the server's (PII redaction is its default; --redact off turns it off on both
    # sides). A full queue blocks the caller instead of dropping after 100 ms: an HTTP client waits
    # for its answer in the same way, and every event must be counted on both sides.
    telemetry = Telemetry(db_path=str(db), block_timeout_ms=600_000, security={"pii": {"enabled": redact}})
    started = time.perf_counter()
    accepted = 0
    for batch in batches:
        accepted += telemetry.track_batch(batch)
    caller = time.perf_counter() - started
    # The clock stops when every batch is committed (the writer's queue is drained): what a 200 from
    # the server promises. flush() then also brings the text index up to date, which the server does
    # in the background after answering; its extra time is reported beside.
    runtime = telemetry.runtime
    assert runtime is not None
    committed = runtime.worker.flush(600)
    elapsed = time.perf_counter() - started
    flushed = telemetry.flush(600) and committed
    flush_extra = time.perf_counter() - started - elapsed
    health = telemetry.get_health_status()
    telemetry.shutdown()
    written = health["events"]["written"]
    return {"events": len(events), "accepted": accepted, "written": written, "flushed": flushed,
            "dropped_total": health["dropped_total"], "elapsed_s": elapsed, "caller_s": caller,
            "text_index_tail_s": flush_extra, "events_per_s_to_flush": written / (elapsed + flush_extra),
            "events_per_s": written / elapsed, "peak_rss_mb": peak_rss_mb()}


# -- the HTTP side ----------------------------------------------------------------------------------

def client_main(port: int, body_file: str, wait: str) -> None:
    """One client process: connect, say ready, wait for `go` on stdin, post every body; print timings."""
    bodies = [line.encode() for line in Path(body_file).read_text().splitlines()]
    sizes = [len(json.loads(body)) for body in bodies]  # the last batch of a session can be short
    path = "/api/events" + ("?wait=false" if wait == "false" else "")
    expected = 202 if wait == "false" else 200
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    print("ready", flush=True)
    sys.stdin.readline()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    acknowledged = 0
    pc = time.perf_counter
    started = time.monotonic()
    for body, size in zip(bodies, sizes, strict=True):
        sent = pc()
        conn.request("POST", path, body, headers)
        response = conn.getresponse()
        response.read()
        latencies.append(pc() - sent)
        if response.status == expected:
            acknowledged += size
        else:
            errors[str(response.status)] = errors.get(str(response.status), 0) + 1
    finished = time.monotonic()
    conn.close()
    print(json.dumps({"started": started, "finished": finished, "latencies": latencies, "errors": errors,
                      "acknowledged": acknowledged}), flush=True)


def _post(port: int, body: bytes, path: str = "/api/events") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def _count_events(db: Path) -> int:
    with sqlite3.connect(str(db)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def client_files(sessions: list[list[dict[str, Any]]], workdir: Path, clients: int) -> list[Path]:
    """Write each client's request bodies (one JSON batch a line) to a file of its own; the files."""
    files = []
    for c, bodies in enumerate(bodies_per_client(sessions, clients)):
        path = workdir / f"client-{c}.jsonl"
        path.write_bytes(b"\n".join(bodies) + b"\n")
        files.append(path)
    return files


def run_http(db: Path, sessions: list[list[dict[str, Any]]], workdir: Path, wait: str,
             redact: bool, clients_n: int = CLIENTS, server_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """One HTTP run: a fresh server, clients_n client processes started together; events/s and latencies."""
    files = client_files(sessions, workdir, clients_n)
    config = db.parent / "bench-config.toml"
    config.write_text(f"[security.pii]\nenabled = {'true' if redact else 'false'}\n")
    server, port = serve_api(db, "--rate-limit", "off", "--log-level", "warning", *server_args, config=config)
    try:
        go, reports = run_clients(__file__, [(str(port), str(f), wait) for f in files])
        sent_all = max(r["finished"] for r in reports)
        marker = 0
        if wait == "false":
            # Queued behind every fire-and-forget batch: its commit means all of them are committed.
            status = _post(port, json.dumps({"event_type": "custom", "category": "bench-marker"}).encode())
            if status != 200:
                raise RuntimeError(f"the final durable request got {status}")
            marker = 1
        finished = time.monotonic()
        stored = _count_events(db) - marker  # read while the server still runs: durable means stored now
    finally:
        server.terminate()
        server.wait(timeout=60)
    latencies = sorted(x for r in reports for x in r["latencies"])
    errors = merged_errors(reports)
    acknowledged = sum(r["acknowledged"] for r in reports)
    elapsed = finished - go
    return {"mode": "durable" if wait != "false" else "fire_and_forget", "clients": clients_n, "batch": BATCH,
            "requests": len(latencies), "errors": errors, "acknowledged": acknowledged, "stored": stored,
            "elapsed_s": elapsed, "send_s": sent_all - go, "events_per_s": stored / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": latencies[-1] * 1000 if latencies else float("nan")}


# -- orchestration ----------------------------------------------------------------------------------

def _in_process_child(db: Path, sessions: int, chunks: int, redact: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--inproc", str(db), "--sessions", str(sessions), "--chunks", str(chunks),
           "--redact", "on" if redact else "off"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH_DIR)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _rates(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['events_per_s']:,.0f}" for r in runs)


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _no_writer_figures(runs: dict[str, list[dict[str, Any]]], local: float, durable: float) -> dict[str, Any]:
    """With --compare-writer: the median of a server that commits on its own writer thread, and the ratios."""
    series = runs.get("durable_no_writer_process")
    if not series:
        return {}
    rate = _med(series, "events_per_s")
    return {"durable_no_writer_process_events_per_s": rate, "durable_no_writer_process_ratio": ratio(rate, local),
            "writer_process_gain": ratio(durable, rate)}


def _no_writer_lines(runs: dict[str, list[dict[str, Any]]], results: dict[str, Any]) -> list[str]:
    """The summary line of _no_writer_figures, when there are any."""
    if "durable_no_writer_process_events_per_s" not in results:
        return []
    return [f"  HTTP durable, --no-writer-process: {results['durable_no_writer_process_events_per_s']:,.0f} "
            f"events/s ({_rates(runs['durable_no_writer_process'])}), "
            f"{results['durable_no_writer_process_ratio']:.2f}x in-process; with the writer process "
            f"{results['writer_process_gain']:.2f}x this"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run in-process, durable HTTP and fire-and-forget HTTP interleaved; print JSON and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=98, help="stream events per session")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redact", choices=("on", "off"), default="on",
                        help="PII redaction in the chain of both sides (on: the server's default)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="client processes")
    parser.add_argument("--compare-writer", action="store_true",
                        help="also run durable HTTP with --no-writer-process (commits on the server's own thread)")
    parser.add_argument("--client", nargs=3, metavar=("PORT", "FILE", "WAIT"), help=argparse.SUPPRESS)
    parser.add_argument("--inproc", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client_main(int(args.client[0]), args.client[1], args.client[2])
        return {}
    redact = args.redact == "on"
    if args.inproc:
        result = run_in_process(Path(args.inproc), args.sessions, args.chunks, redact)
        print(json.dumps(result))
        return result

    sessions = workload(args.sessions, args.chunks)
    total = sum(len(s) for s in sessions)
    runs: dict[str, list[dict[str, Any]]] = {"in_process": [], "durable": [], "fire_and_forget": []}
    if args.compare_writer:
        runs["durable_no_writer_process"] = []
    with tempfile.TemporaryDirectory(prefix="vk-bench-durable-") as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        for _ in range(args.runs):
            remove_db(db)
            runs["in_process"].append(_in_process_child(db, args.sessions, args.chunks, redact))
            remove_db(db)
            runs["durable"].append(run_http(db, sessions, workdir, "true", redact, args.clients))
            remove_db(db)
            runs["fire_and_forget"].append(run_http(db, sessions, workdir, "false", redact, args.clients))
            if args.compare_writer:
                remove_db(db)
                runs["durable_no_writer_process"].append(run_http(db, sessions, workdir, "true", redact, args.clients,
                                                                  ("--no-writer-process",)))
        remove_db(db)
    local, durable, faf = (_med(runs[k], "events_per_s") for k in ("in_process", "durable", "fire_and_forget"))
    per_run = [ratio(d["events_per_s"], i["events_per_s"]) for d, i in zip(runs["durable"], runs["in_process"],
                                                                          strict=True)]
    results: dict[str, Any] = {
        "machine": machine(), "events": total, "sessions": args.sessions, "clients": args.clients, "batch": BATCH,
        "redact": args.redact,
        "runs": runs,
        "in_process_events_per_s": local, "durable_events_per_s": durable, "fire_and_forget_events_per_s": faf,
        "durable_p50_ms": _med(runs["durable"], "p50_ms"), "durable_p99_ms": _med(runs["durable"], "p99_ms"),
        "fire_and_forget_p50_ms": _med(runs["fire_and_forget"], "p50_ms"),
        "fire_and_forget_p99_ms": _med(runs["fire_and_forget"], "p99_ms"),
        "ratio": ratio(durable, local), "ratio_per_run": per_run,
        "fire_and_forget_ratio": ratio(faf, local),
        **_no_writer_figures(runs, local, durable),
    }
    results["targets_met"] = {
        "ratio_ge_0.7": results["ratio"] >= 0.7,
        "every_acknowledged_event_stored": all(r["stored"] >= r["acknowledged"] and not r["errors"]
                                               for r in runs["durable"]),
        "in_process_nothing_dropped": all(r["dropped_total"] == 0 and r["flushed"] for r in runs["in_process"]),
    }
    emit("durable_http", results, [
        f"durable HTTP ingest: {total:,} events ({args.sessions:,} sessions of {args.chunks + 2}), "
        f"{args.clients} client processes, batches of {BATCH}, SQLite, PII redaction {args.redact} on both "
        f"sides, median of {args.runs}",
        f"  in-process track_batch: {local:,.0f} events/s "
        f"({_rates(runs['in_process'])})",
        f"  HTTP durable (200 after commit): {durable:,.0f} events/s "
        f"({_rates(runs['durable'])}), request p50 "
        f"{results['durable_p50_ms']:.1f} ms, p99 {results['durable_p99_ms']:.1f} ms",
        f"  HTTP fire-and-forget (?wait=false, 202): {faf:,.0f} events/s, request p50 "
        f"{results['fire_and_forget_p50_ms']:.1f} ms, p99 {results['fire_and_forget_p99_ms']:.1f} ms "
        f"({results['fire_and_forget_ratio']:.2f}x in-process)",
        f"  ratio durable / in-process {results['ratio']:.2f} (per run {', '.join(f'{r:.2f}' for r in per_run)}; "
        f"target >= 0.7); targets: {results['targets_met']}",
        *_no_writer_lines(runs, results),
    ])
    return results


if __name__ == "__main__":
    main()
