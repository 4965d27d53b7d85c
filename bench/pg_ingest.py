"""SQLStore.store_batch into PostgreSQL, with and without the pg_trgm GIN indexes of migration 0003.

    python bench/pg_ingest.py [--events 200000] [--batch 1000] [--dsn ...]

Each run gets a fresh schema in the database `test` on 127.0.0.1:5432 (dropped afterwards). The
"without" run drops ix_events_label_trgm and ix_events_stream_data_trgm after migrating, so the
difference is what maintaining the text-search indexes costs PostgreSQL's ingest. Prints one JSON
line and a summary.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

from raw_vs_store import make_events
from vibekit_telemetry.store.sql import SQLStore

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def run(events: int, batch: int, trgm: bool) -> dict[str, Any]:
    """Time store_batch of `events` events in `batch`-event transactions into a fresh schema."""
    import psycopg

    schema = "vk_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        store = SQLStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}")
        store.initialize()
        if not trgm:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("DROP INDEX IF EXISTS ix_events_label_trgm")
                conn.exec_driver_sql("DROP INDEX IF EXISTS ix_events_stream_data_trgm")
        rows = make_events(events)
        started = time.perf_counter()
        for i in range(0, events, batch):
            store.store_batch(rows[i:i + batch])
        elapsed = time.perf_counter() - started
        store.shutdown()
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return {"events": events, "elapsed_s": elapsed, "events_per_s": events / elapsed}


def main() -> None:
    """Parse arguments, run with and without the trigram indexes (alternating), print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"with_trgm": [], "without_trgm": []}
    for _ in range(args.repeats):
        runs["with_trgm"].append(run(args.events, args.batch, True)["events_per_s"])
        runs["without_trgm"].append(run(args.events, args.batch, False)["events_per_s"])
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    print(json.dumps({"bench": "pg_ingest", "events": args.events, "batch": args.batch, "runs": runs,
                      "median_events_per_s": med, "ratio": med["with_trgm"] / med["without_trgm"]}))
    print(f"PostgreSQL store_batch, {args.events:,} events in batches of {args.batch}: "
          f"with pg_trgm GIN {med['with_trgm']:,.0f} events/s, without {med['without_trgm']:,.0f} events/s "
          f"(ratio {med['with_trgm'] / med['without_trgm']:.2f})")


if __name__ == "__main__":
    main()
