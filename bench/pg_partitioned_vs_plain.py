"""COPY into the partitioned events table (migration 0014) against the plain one it replaced, same run.

    python bench/pg_partitioned_vs_plain.py [--events 20000] [--repeats 2]

Each run gets a fresh schema in the database `test`, created by SQLStore.initialize() (partitioned:
today's day partition, every index); the plain peer is the same schema downgraded to 0013 (one table
keyed by event_id, the same indexes). The same rows (bench/_util.iter_rows, the last hour) are COPYed
into each, 5,000 per COPY and transaction, sessions first (not timed); runs alternate. Prints a JSON
line and a summary.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from _util import emit, iter_rows, machine, ratio

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
SESSION_COLUMNS = ("id, category, action, status, start_time, end_time, duration, event_count, stream_count, "
                   "error_count, last_event_time, label, sandbox_id, repo_url, metadata")


def run(partitioned: bool, sessions: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]) -> float:
    """COPY the rows into a fresh schema of either layout; return events/s."""
    import psycopg
    from sqlalchemy import create_engine

    from vibekit_telemetry.store import migrate
    from vibekit_telemetry.store.schema import EVENT_COLUMNS
    from vibekit_telemetry.store.sql import SQLStore

    schema = "vk_bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        store = SQLStore(url)
        store.initialize()
        store.shutdown()
        if not partitioned:
            engine = create_engine(url)
            migrate.downgrade(engine, "0013")
            engine.dispose()
        with psycopg.connect(f"{DSN} options=-csearch_path={schema}") as conn:
            with conn.cursor() as cur, cur.copy(f"COPY sessions ({SESSION_COLUMNS}) FROM STDIN") as copy:
                for s in sessions:
                    copy.write_row(s)
            conn.commit()
            started = time.perf_counter()
            for i in range(0, len(rows), 5000):
                with conn.cursor() as cur, cur.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                    for r in rows[i:i + 5000]:
                        copy.write_row(r)
                conn.commit()
            return len(rows) / (time.perf_counter() - started)
    finally:
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    """Alternate the two layouts; print the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sessions: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for session, event_rows in iter_rows(args.events, int(time.time() * 1000) - 3_600_000):
        sessions.append(session)
        rows.extend(event_rows)
    runs: dict[str, list[float]] = {"partitioned": [], "plain": []}
    for _ in range(args.repeats):
        runs["partitioned"].append(run(True, sessions, rows))
        runs["plain"].append(run(False, sessions, rows))
    med = {k: statistics.median(v) for k, v in runs.items()}
    emit("pg_partitioned_vs_plain", {"machine": machine(), "events": len(rows), "runs": runs, "median": med,
                                     "ratio": ratio(med["partitioned"], med["plain"])},
         [f"COPY of {len(rows):,} events: partitioned {med['partitioned']:,.0f} events/s, plain "
          f"{med['plain']:,.0f} events/s, ratio {ratio(med['partitioned'], med['plain']):.2f}"])


if __name__ == "__main__":
    main()
