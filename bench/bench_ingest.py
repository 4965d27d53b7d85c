"""Sustained ingest through the whole pipeline into SQLite, against raw sqlite3.executemany.

pipeline: a fresh Telemetry on a new SQLite file; the workload (sessions of 1 start, ~20 stream
chunks of 80 chars, 1 end, an error in 5% of them) is tracked as fast as the caller can, timed
from the first track call to flush() returning. It runs in its own subprocess so its peak RSS is
its own.

raw: a database created by SQLStore.initialize() (same schema, same indexes, same pragmas; since
migration 0005 there is no FTS insert trigger, text is indexed in bulk afterwards), then the same
event rows (16 columns, ids and JSON already made) and their session rows inserted with
cursor.executemany, one transaction per 5,000 events (the writer's max batch). The raw side then
also runs the bulk text indexing (SQLStore.index_text) and reports "raw + index" as a second,
like-for-like baseline: the pipeline's figure includes the writer's catch-up indexing.
The pipeline's rate counts written events; it runs with block_timeout_ms raised so that a caller
faster than the writer waits for room instead of dropping (the default gives up after 100 ms).
Rows are built before the clock starts. Also in its own subprocess.

Targets (DESIGN.md): pipeline events/s >= 0.8 x raw; peak RSS while ingesting 1M events <= 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import (
    BENCH_DIR,
    INSERT_EVENT,
    INSERT_SESSION,
    Workload,
    emit,
    iter_rows,
    machine,
    peak_rss_mb,
    ratio,
    remove_db,
)

BATCH = 5000


def run_pipeline(db: Path, events: int) -> dict[str, Any]:
    from vibekit_telemetry import Telemetry

    # Sustained ingest outruns the writer: the caller must wait for room, not drop after the default
    # 100 ms block timeout, or the run would measure a lossy ingest. Everything else is the default.
    telemetry = Telemetry(db_path=str(db), block_timeout_ms=600_000)
    track_start, track_stream = telemetry.track_start, telemetry.track_stream
    track_error, track_end = telemetry.track_error, telemetry.track_end
    sessions = Workload().sessions(events)
    worker = telemetry.runtime.worker
    depth, capacity = worker.depth, worker.capacity()
    max_depth = 0
    started = time.perf_counter()
    caller_done = started
    count = 0
    for n, calls in enumerate(sessions):
        if n % 200 == 0:  # about every 4,400 events
            max_depth = max(max_depth, depth())
        sid = ""
        for kind, payload in calls:
            if kind == "stream":
                track_stream(sid, payload)
            elif kind == "start":
                category, action, prompt, metadata = payload
                sid = track_start(category, action, prompt, metadata=metadata)
            elif kind == "error":
                track_error(sid, payload)
            else:
                track_end(sid, payload)
        count += len(calls)
    caller_done = time.perf_counter()
    ok = telemetry.flush(3600)
    elapsed = time.perf_counter() - started
    health = telemetry.get_health_status()
    telemetry.shutdown()
    return {"events": count, "elapsed_s": elapsed, "caller_s": caller_done - started, "flushed": ok,
            "events_per_s": health["events"]["written"] / elapsed, "peak_rss_mb": peak_rss_mb(),
            "written": health["events"]["written"], "dropped_total": health["dropped_total"],
            "batches": health["writer"]["batches"], "avg_batch_ms": health["writer"]["avg_batch_ms"],
            "queue_max_depth_sampled": max_depth, "queue_capacity": capacity}


def build_rows(events: int) -> tuple[list[tuple[int, tuple[Any, ...]]], list[tuple[Any, ...]]]:
    """The session rows (each with the index of its first event) and the event rows the pipeline stores."""
    session_rows: list[tuple[int, tuple[Any, ...]]] = []
    event_rows: list[tuple[Any, ...]] = []
    for session, rows in iter_rows(events, int(time.time() * 1000)):
        session_rows.append((len(event_rows), session))
        event_rows.extend(rows)
    return session_rows, event_rows


def run_raw(db: Path, events: int) -> dict[str, Any]:
    import sqlite3

    from vibekit_telemetry.store import dialects
    from vibekit_telemetry.store.sql import WRITER_CACHE_KB, SQLStore

    store = SQLStore(str(db))
    store.initialize()
    store.shutdown()
    session_rows, event_rows = build_rows(events)
    conn = sqlite3.connect(str(db), isolation_level=None)
    dialects.apply_sqlite_pragmas(conn, 5000, True)
    conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")  # as the store's writer connection
    insert_session, insert_event = INSERT_SESSION, INSERT_EVENT
    started = time.perf_counter()
    s = 0
    for i in range(0, len(event_rows), BATCH):
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        upto = s
        while upto < len(session_rows) and session_rows[upto][0] < i + BATCH:
            upto += 1
        if upto > s:  # the sessions this batch's events belong to, first (foreign keys are on)
            cur.executemany(insert_session, [row for _, row in session_rows[s:upto]])
            s = upto
        cur.executemany(insert_event, event_rows[i:i + BATCH])
        cur.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    elapsed = time.perf_counter() - started
    n = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    conn.close()
    index_started = time.perf_counter()
    store = SQLStore(str(db))
    indexed = store.index_text()
    store.flush()
    store.shutdown()
    index_s = time.perf_counter() - index_started
    return {"events": n, "elapsed_s": elapsed, "events_per_s": n / elapsed, "peak_rss_mb": peak_rss_mb(),
            "index_s": index_s, "indexed_rows": indexed, "index_rows_per_s": indexed / index_s if index_s else 0,
            "with_index_events_per_s": n / (elapsed + index_s)}


def _child(mode: str, events: int, tmpdir: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--events", str(events),
           "--tmpdir", tmpdir]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=BENCH_DIR)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--tmpdir", default=None, help="where the databases go (default: a temp dir)")
    parser.add_argument("--child", choices=("pipeline", "raw"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        db = Path(args.tmpdir) / f"ingest-{args.child}.db"
        remove_db(db)
        run = run_pipeline if args.child == "pipeline" else run_raw
        result = run(db, args.events)
        result["db_bytes"] = os.path.getsize(db)
        remove_db(db)
        print(json.dumps(result))
        return result

    with tempfile.TemporaryDirectory(prefix="vk-bench-ingest-", dir=args.tmpdir) as tmp:
        raw = _child("raw", args.events, tmp)
        pipe = _child("pipeline", args.events, tmp)
    results: dict[str, Any] = {
        "machine": machine(), "events": args.events, "pipeline": pipe, "raw_executemany": raw,
        "ratio": ratio(pipe["events_per_s"], raw["events_per_s"]),
        "ratio_vs_raw_plus_index": ratio(pipe["events_per_s"], raw["with_index_events_per_s"]),
    }
    results["targets_met"] = {"ratio_ge_0.8": results["ratio"] >= 0.8,
                              "pipeline_peak_rss_le_100mb": pipe["peak_rss_mb"] <= 100}
    emit("ingest", results, [
        f"ingest of {args.events:,} events into SQLite",
        f"  pipeline: {pipe['events_per_s']:,.0f} events/s ({pipe['elapsed_s']:.1f} s, caller done at "
        f"{pipe['caller_s']:.1f} s), peak RSS {pipe['peak_rss_mb']:.0f} MB, written {pipe['written']:,}, "
        f"dropped {pipe['dropped_total']}",
        f"  queue: max sampled depth {pipe['queue_max_depth_sampled']:,} of {pipe['queue_capacity']:,}",
        f"  raw executemany: {raw['events_per_s']:,.0f} events/s ({raw['elapsed_s']:.1f} s); + bulk text "
        f"indexing {raw['index_s']:.1f} s ({raw['index_rows_per_s']:,.0f} rows/s): "
        f"{raw['with_index_events_per_s']:,.0f} events/s",
        f"  ratio {results['ratio']:.2f} vs raw, {results['ratio_vs_raw_plus_index']:.2f} vs raw + index "
        f"(target >= 0.8); targets: {results['targets_met']}",
    ])
    return results


if __name__ == "__main__":
    main()
