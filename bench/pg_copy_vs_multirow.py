"""PostgreSQL bulk ingest: COPY vs multi-row INSERT vs executemany vs the store's own write, same rows, same run.

    python bench/pg_copy_vs_multirow.py [--events 100000] [--batch 1000] [--repeats 3]

Every method writes the same events, `batch` rows per transaction, into a fresh schema migrated to
head (all indexes, pg_trgm included) in the database `test` on 127.0.0.1:5432; the methods alternate
within each repeat so the machine's load hits them alike. The raw methods write the events table
only (their sessions are created before timing); `store_batch` also keeps sessions, rollups and
totals (what a server's ingest does). Prints one JSON line and a summary.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from raw_vs_store import make_events
from vibekit_telemetry.store._batch import plan_batch
from vibekit_telemetry.store.schema import EVENT_COLUMNS
from vibekit_telemetry.store.sql import SQLStore

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
COLS = ", ".join(EVENT_COLUMNS)
Row = tuple[Any, ...]


def _copy(cur: Any, rows: Sequence[Row]) -> None:
    with cur.copy(f"COPY events ({COLS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _multirow(cur: Any, rows: Sequence[Row]) -> None:
    one = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    # Idempotent like the store: a replayed event id is skipped, not an error.
    sql = f"INSERT INTO events ({COLS}) VALUES {', '.join([one] * len(rows))} ON CONFLICT (event_id) DO NOTHING"
    cur.execute(sql, [value for row in rows for value in row])


def _executemany(cur: Any, rows: Sequence[Row]) -> None:
    one = ", ".join(["%s"] * len(EVENT_COLUMNS))
    cur.executemany(f"INSERT INTO events ({COLS}) VALUES ({one}) ON CONFLICT (event_id) DO NOTHING", rows)


RAW: dict[str, Callable[[Any, Sequence[Row]], None]] = {"copy": _copy, "multirow_insert": _multirow,
                                                        "executemany": _executemany}


def run(method: str, events: list[Any], batch: int) -> float:
    """Write the events with one method into a fresh schema; return events per second."""
    import psycopg

    schema = "vk_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = SQLStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}")
    try:
        store.initialize()
        if method == "store_batch":
            started = time.perf_counter()
            for i in range(0, len(events), batch):
                store.store_batch(events[i:i + batch])
            return len(events) / (time.perf_counter() - started)
        rows = plan_batch(events, {}, set()).event_rows()
        write = RAW[method]
        with psycopg.connect(DSN + f" options=-csearch_path={schema}") as conn:
            # events.session_id references sessions: the sessions exist before the clock starts.
            sids = sorted({e.session_id for e in events if e.session_id})
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO sessions (id, start_time) VALUES (%s, 0)", [(s,) for s in sids])
            started = time.perf_counter()
            for i in range(0, len(rows), batch):
                with conn.transaction(), conn.cursor() as cur:
                    write(cur, rows[i:i + batch])
            elapsed = time.perf_counter() - started
            count = conn.execute("SELECT count(*) FROM events").fetchone()
            assert count is not None and count[0] == len(rows), (method, count)
        return len(events) / elapsed
    finally:
        store.shutdown()
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    """Run every method `repeats` times, alternating; print the medians and the ratios to COPY."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    events = make_events(args.events)
    methods = ("copy", "multirow_insert", "executemany", "store_batch")
    runs: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.repeats):
        for method in methods:
            runs[method].append(run(method, events, args.batch))
    med = {m: sorted(v)[len(v) // 2] for m, v in runs.items()}
    ratio = {m: med[m] / med["copy"] for m in methods}
    print(json.dumps({"bench": "pg_copy_vs_multirow", "events": args.events, "batch": args.batch, "runs": runs,
                      "median_events_per_s": med, "ratio_to_copy": ratio}))
    for method in methods:
        print(f"{method:>16}: {med[method]:>10,.0f} events/s  ({ratio[method]:.2f} x COPY)")


if __name__ == "__main__":
    main()
