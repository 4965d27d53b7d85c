"""Query latency at 10M events: PostgreSQL (partitioned, migration 0014) beside SQLite, same workload, same run.

    python bench/pg_scale_queries.py                   # 10,000,000 events (builds take many minutes)
    python bench/pg_scale_queries.py --events 200000   # a quick look

Both stores hold the workload of bench_lookup.py (sessions of a start, ~20 stream chunks, an end, an
error in 5 %; 30 days up to now). SQLite: bench_lookup.build (cached in bench/.cache/). PostgreSQL: a
database of its own (pgscale_bench_<n>, kept for re-runs unless --rebuild), built the fastest honest
way: SQLStore.initialize() makes the schema and upkeep() the day partitions of the 30 days; the
secondary event indexes are dropped, the same rows go in by COPY (sessions, events, event_ids) with the
rollups, session_totals and session_rollups the writer would have left, and the indexes are rebuilt
from their own DDL; then ANALYZE. Every figure is then taken through a fresh SQLStore, as the API
reads: get_session p50/p99 on random ids, get_stats(), a 7-day window by category, two metadata
filters and a text search (limit 100), medians of 7 calls. The load average is printed beside.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

from _util import CACHE_DIR, SESSION_COLUMNS, emit, machine, summarize_ns
from bench_lookup import SESSION_ROLLUPS_SQL, SPAN_MS, Sums, batches
from bench_lookup import build as build_sqlite

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
DAY = 86_400_000


def _pg_url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def build_pg(name: str, events: int) -> dict[str, Any]:
    """Create database `name` and fill it with `events` events (see the module docstring)."""
    import psycopg

    from vibekit_telemetry.store.sql import SQLStore

    started = time.perf_counter()
    final, name = name, name + "_building"  # renamed when complete: a half-built one is never measured
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    first_ts = int(time.time() * 1000) - SPAN_MS
    store = SQLStore(_pg_url(name))
    store.initialize()
    for day in range(first_ts - DAY, first_ts + SPAN_MS + DAY, DAY):
        store.upkeep(now=day)
    store.shutdown()
    conn = psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={name}")
    deferred = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' "
                            "AND indexname <> 'events_pkey'").fetchall()
    for index, _ in deferred:
        conn.execute(f"DROP INDEX {index}")
    conn.commit()
    from vibekit_telemetry.store.schema import EVENT_COLUMNS

    sums = Sums()
    for sessions, rows in batches(events, first_ts, sums, 100_000):
        with conn.cursor() as cur:
            with cur.copy(f"COPY sessions ({', '.join(SESSION_COLUMNS)}) FROM STDIN") as copy:
                for s in sessions:
                    copy.write_row(s)
            with cur.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            with cur.copy("COPY event_ids (event_id, timestamp) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row((r[0], r[10]))
        conn.commit()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO rollups (period, bucket_start, category, action, event_type, count, error_count, "
            "duration_sum, duration_count) VALUES (%s, %s, %s, %s, %s, %s, %s, 0, 0)", sums.rollup_rows())
        cur.executemany(
            "INSERT INTO session_totals (category, events, error_events, sessions, active_sessions, "
            "ended_sessions, duration_sum, duration_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            sums.totals_rows())
        for sql in SESSION_ROLLUPS_SQL:
            cur.execute(sql)
    conn.commit()
    inserted = time.perf_counter() - started
    conn.execute("SET maintenance_work_mem = '512MB'")
    for _, ddl in deferred:
        conn.execute(ddl.replace(" ON ONLY ", " ON "))
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.close()
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {final} WITH (FORCE)")
        admin.execute(f"ALTER DATABASE {name} RENAME TO {final}")
    return {"build_s": time.perf_counter() - started, "insert_s": inserted}


def measure(store: Any, ids: list[str]) -> dict[str, Any]:
    """The read figures through one store (see the module docstring)."""
    from vibekit_telemetry.query import QueryFilter, StatsFilter

    pc = time.perf_counter_ns
    for sid in ids[:50]:  # warm the pool and statement caches
        store.get_session(sid)
    plain = []
    for sid in ids:
        t0 = pc()
        assert store.get_session(sid) is not None
        plain.append(pc() - t0)

    def median_ms(call: Any) -> float:
        runs = []
        for _ in range(7):
            t0 = pc()
            call()
            runs.append(pc() - t0)
        return sorted(runs)[3] / 1e6

    now = int(time.time() * 1000)
    return {
        "get_session": summarize_ns(plain),
        "get_stats_ms": median_ms(lambda: store.get_stats(StatsFilter())),
        "last_7d_by_category_ms": median_ms(lambda: store.get_stats(
            StatsFilter(since=now - 7 * DAY, group_by="category"))),
        "metadata_model_ms": median_ms(lambda: store.query(QueryFilter(metadata={"model": "codex-model"},
                                                                       limit=100))),
        "metadata_status_error_ms": median_ms(lambda: store.query(QueryFilter(metadata={"status": "error"},
                                                                              limit=100))),
        "contains_ms": median_ms(lambda: store.query(QueryFilter(contains="429 Too", limit=100))),
        "total_events": store.get_stats(StatsFilter()).total_events,
    }


def _sample_ids(store: Any, n: int) -> list[str]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM sessions")).scalar_one()
        step = max(1, count // n)
        ids = list(conn.execute(text(f"SELECT id FROM sessions ORDER BY id LIMIT {n * step}")).scalars())[::step]
    random.Random(7).shuffle(ids)
    return ids[:n]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build (or reuse) both stores, measure both, print JSON and a table."""
    from vibekit_telemetry.store.sql import SQLStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    name = f"pgscale_bench_{args.events}"
    sqlite_path = Path(CACHE_DIR) / f"lookup-{args.events}.db"
    builds: dict[str, Any] = {}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if args.rebuild or not sqlite_path.exists():
        builds["sqlite"] = build_sqlite(sqlite_path, args.events)
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if args.rebuild or not exists:
        builds["postgresql"] = build_pg(name, args.events)
    results: dict[str, Any] = {"events": args.events, "builds": builds, "machine": machine()}
    for backend, url in (("sqlite", str(sqlite_path)), ("postgresql", _pg_url(name))):
        store = SQLStore(url)
        store.initialize()
        load = os.getloadavg()[0]
        results[backend] = {**measure(store, _sample_ids(store, args.lookups)), "load_avg_1m": load}
        store.shutdown()
    lines = [f"{'':32} {'SQLite':>12} {'PostgreSQL':>12}"]
    for key, label in (("get_stats_ms", "get_stats() ms"), ("last_7d_by_category_ms", "7-day window ms"),
                       ("metadata_model_ms", "metadata model= ms"), ("metadata_status_error_ms",
                                                                     "metadata status=error ms"),
                       ("contains_ms", "contains '429 Too' ms")):
        lines.append(f"{label:32} {results['sqlite'][key]:>12.2f} {results['postgresql'][key]:>12.2f}")
    for q in ("p50_us", "p99_us"):
        lines.append(f"{'get_session ' + q:32} {results['sqlite']['get_session'].get(q, float('nan')):>12.1f} "
                     f"{results['postgresql']['get_session'].get(q, float('nan')):>12.1f}")
    emit("pg_scale_queries", results, lines)
    return results


if __name__ == "__main__":
    main()
