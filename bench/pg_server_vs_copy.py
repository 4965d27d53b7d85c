"""Sustained ingest into PostgreSQL through `telemetry api` against a raw COPY of the same rows, same run.

    python bench/pg_server_vs_copy.py                     # 1,000 sessions of 100 events, 3 runs
    python bench/pg_server_vs_copy.py --sessions 200 --runs 1

server: a real `telemetry api --db postgresql://…` process on loopback (`--rate-limit off`, otherwise
the defaults: partitioned events, event_ids, totals deltas, pg_trgm and metadata GIN indexes) on a
fresh database of its own; 4 client processes of bench_durable_http.py, each with one keep-alive
connection, post batches of 100 events to POST /api/events and wait for each 200 (sent once the batch
is committed). The clock runs from "go" to the last answer; the rows are then counted in PostgreSQL.

copy (the peer): the rows the server stored (sessions and events, read back before the clock) COPYed
into another fresh database created by SQLStore.initialize() (same partitioned table, same indexes),
10,000 rows per COPY and transaction on one connection; no event_ids, rollups or totals: the least a
bulk loader does to hold the same rows. Server and copy runs alternate; the report quotes medians.

Target (issue 16): server events/s >= 0.5 x raw COPY.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _util import BENCH_DIR, emit, machine, merged_errors, ratio, run_clients, serve_api
from bench_durable_http import BATCH, CLIENTS, client_files, workload

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
CHUNK = 10_000
SESSION_COLUMNS = ("id, category, action, status, start_time, end_time, duration, event_count, stream_count, "
                   "error_count, last_event_time, label, sandbox_id, repo_url, metadata")


def _new_database() -> str:
    import psycopg

    name = "pgscale_ingest_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return name


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_s() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process on this host (backends, WAL writer, autovacuum…), by pid."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if not f.read().startswith("postgres"):
                        continue
            except OSError:
                continue
            out[int(entry)] = _cpu_s(int(entry))
    return out


def run_server(sessions: list[list[dict[str, Any]]], workdir: Path, redact: bool = True,
               server_args: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """One server run on a fresh database; return its figures and the database (kept for the copy run).

    Besides the rate, the CPU seconds per event of the server process and of PostgreSQL from just
    before the clients start to the last answer: steadier than the rate on a shared machine, and what
    says where the time went (Linux /proc; PostgreSQL on this host; other databases' work counts too).
    """
    import psycopg

    name = _new_database()
    files = client_files(sessions, workdir, CLIENTS)
    config = workdir / "bench-config.toml"
    config.write_text(f"[security.pii]\nenabled = {'true' if redact else 'false'}\n")
    server, port = serve_api(f"postgresql://postgres@127.0.0.1:5432/{name}", "--rate-limit", "off",
                             "--log-level", "warning", *server_args, config=config)
    try:
        server_cpu, pg_cpu = _cpu_s(server.pid), _postgres_cpu_s()
        go, reports = run_clients(BENCH_DIR / "bench_durable_http.py", [(str(port), str(f), "true") for f in files])
        finished = time.monotonic()
        server_cpu = _cpu_s(server.pid) - server_cpu
        pg_cpu = sum(v - pg_cpu.get(pid, 0.0) for pid, v in _postgres_cpu_s().items())
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(timeout=60)
    errors = merged_errors(reports)
    elapsed = finished - go
    return {"stored": stored, "errors": errors, "elapsed_s": elapsed, "events_per_s": stored / elapsed,
            "server_cpu_us_per_event": server_cpu / stored * 1e6,
            "postgres_cpu_us_per_event": pg_cpu / stored * 1e6}, name


def run_copy(source: str) -> dict[str, Any]:
    """COPY the rows the server stored in `source` into a fresh store database; events/s of the COPY."""
    import psycopg

    from vibekit_telemetry.store.schema import EVENT_COLUMNS
    from vibekit_telemetry.store.sql import SQLStore

    cols = ", ".join(EVENT_COLUMNS)
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={source}") as conn:
        session_rows = conn.execute(f"SELECT {SESSION_COLUMNS} FROM sessions").fetchall()
        event_rows = conn.execute(f"SELECT {cols} FROM events ORDER BY seq").fetchall()
    name = _new_database()
    try:
        store = SQLStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        store.initialize()
        store.shutdown()
        with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}") as conn:
            backend = conn.info.backend_pid
            backend_cpu = _cpu_s(backend)
            started = time.monotonic()
            with conn.cursor() as cur, cur.copy(f"COPY sessions ({SESSION_COLUMNS}) FROM STDIN") as copy:
                for row in session_rows:
                    copy.write_row(row)
            conn.commit()
            for i in range(0, len(event_rows), CHUNK):
                with conn.cursor() as cur, cur.copy(f"COPY events ({cols}) FROM STDIN") as copy:
                    for row in event_rows[i:i + CHUNK]:
                        copy.write_row(row)
                conn.commit()
            elapsed = time.monotonic() - started
            backend_cpu = _cpu_s(backend) - backend_cpu
    finally:
        _drop_database(name)
    return {"rows": len(event_rows), "elapsed_s": elapsed, "events_per_s": len(event_rows) / elapsed,
            "postgres_cpu_us_per_event": backend_cpu / len(event_rows) * 1e6}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Alternate server and copy runs; print JSON and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=98)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redact", choices=("on", "off"), default="on",
                        help="PII redaction in the server's chain (on: its default; the COPY peer redacts nothing)")
    parser.add_argument("--writer-process", choices=("on", "off"), default="off",
                        help="commit in the server's writer process (off: its default on PostgreSQL); the server "
                             "CPU figure then leaves out the child's")
    args = parser.parse_args(argv)
    server_args = ("--writer-process",) if args.writer_process == "on" else ("--no-writer-process",)
    sessions = workload(args.sessions, args.chunks)
    server_runs, copy_runs, loads = [], [], []
    with tempfile.TemporaryDirectory(prefix="vk-pgscale-") as tmp:
        for _ in range(args.runs):
            figures, name = run_server(sessions, Path(tmp), args.redact == "on", server_args)
            try:
                server_runs.append(figures)
                copy_runs.append(run_copy(name))
            finally:
                _drop_database(name)
            loads.append(os.getloadavg()[0])
    srv = statistics.median(r["events_per_s"] for r in server_runs)
    cpy = statistics.median(r["events_per_s"] for r in copy_runs)
    srv_cpu = statistics.median(r["server_cpu_us_per_event"] for r in server_runs)
    srv_pg = statistics.median(r["postgres_cpu_us_per_event"] for r in server_runs)
    cpy_pg = statistics.median(r["postgres_cpu_us_per_event"] for r in copy_runs)
    results = {"machine": machine(), "events": sum(len(s) for s in sessions), "clients": CLIENTS, "batch": BATCH,
               "server": server_runs, "copy": copy_runs, "median_server_events_per_s": srv,
               "median_copy_events_per_s": cpy, "ratio": ratio(srv, cpy), "load_avg_1m": loads,
               "redact": args.redact}
    emit("pg_server_vs_copy", results, [
        f"PostgreSQL ingest, {results['events']:,} events, median of {args.runs}: through `telemetry api` "
        f"({CLIENTS} clients, batches of {BATCH}, durable, PII redaction {args.redact}) {srv:,.0f} events/s; "
        f"raw COPY of the same rows "
        f"{cpy:,.0f} events/s; ratio {ratio(srv, cpy):.2f} (target >= 0.5); load average {loads}",
        f"CPU per event, medians: server process {srv_cpu:.1f} us + PostgreSQL {srv_pg:.1f} us; "
        f"raw COPY's backend {cpy_pg:.1f} us"])
    return results


if __name__ == "__main__":
    main()
