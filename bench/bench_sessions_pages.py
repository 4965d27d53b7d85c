"""The dashboard's Sessions page over 100,000 sessions: /api/sessions pages (first, middle, last), sorted by
duration / events / errors (issue 9), filtered pages and the prompt search, through a real server on SQLite.

Each figure is the median of 5 requests (ms), as the page issues them (50 a page). The peer of the sorted
pages is the same request on the same database after dropping migration 0013's sort indexes (what every
sorted page cost without them), measured in the same run; the ingest of the seed is timed with and without
those indexes too (what keeping them costs the writer).

    python bench/bench_sessions_pages.py                  # 100,000 sessions
    python bench/bench_sessions_pages.py --sessions 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, machine, median_page_ms

AGENTS = ("claude", "codex", "gemini", "opencode", "grok")
PAGE = 50
RUNS = 5
SORT_INDEXES = ("ix_sessions_sort_duration", "ix_sessions_sort_events", "ix_sessions_sort_errors",
                "ix_sessions_sort_start")


def seed(telemetry: Any, total: int, base: int) -> float:
    """Track `total` sessions (90 % ended, varied durations, streams and errors); return seconds to commit."""
    started = time.perf_counter()
    for chunk in range(0, total, 5000):
        rows: list[dict[str, Any]] = []
        for n in range(chunk, min(total, chunk + 5000)):
            sid, at = f"s{n:07d}", base + n * 1000
            rows.append({"event_type": "start", "session_id": sid, "category": AGENTS[n % 5],
                         "label": f"prompt {n}", "timestamp": at})
            rows += [{"event_type": "stream", "session_id": sid, "stream_data": "chunk", "timestamp": at + 1 + k}
                     for k in range(n % 4)]
            if n % 20 == 0:
                rows.append({"event_type": "error", "session_id": sid, "label": "boom", "timestamp": at + 5})
            if n % 10:
                rows.append({"event_type": "end", "session_id": sid, "timestamp": at + (n * 7919) % 600_000})
        telemetry.track_batch(rows)
    telemetry.flush(timeout=600)
    return time.perf_counter() - started


def open_telemetry(path: Path, *, sort_indexes: bool) -> Any:
    """A Telemetry on a new SQLite file, with or without migration 0013's sort indexes."""
    from vibekit_telemetry import Telemetry

    telemetry = Telemetry(db_path=str(path), block_timeout_ms=600_000)
    if not sort_indexes:
        drop_sort_indexes(telemetry)
    return telemetry


def drop_sort_indexes(telemetry: Any) -> None:
    """Drop the sort indexes (the peer: sorted pages as they were before migration 0013)."""
    with telemetry.store.engine.begin() as conn:
        for name in SORT_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def time_cases(http: Any, cases: list[tuple[str, str, dict[str, Any]]]) -> dict[str, float]:
    """Median ms of RUNS requests per case."""
    out: dict[str, float] = {}
    for name, path, params in cases:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            response = http.get(path, params={"limit": PAGE, **params})
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        out[name] = statistics.median(times)
    return out


def rss_mb() -> float:
    """This process's resident set size now (the server runs in it), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def time_downloads(http: Any) -> dict[str, Any]:
    """Download every event (JSON) and every session longest first (CSV) through export/: s, MB, RSS growth."""
    out: dict[str, Any] = {}
    # The first 30,000 events first: the RSS it leaves is the warm-up; the whole table after it must add
    # (almost) nothing if a download's memory does not grow with its size.
    for name, params in (("events json, newest 30,000", {"what": "events", "format": "json", "limit": 30_000}),
                         ("events json, all", {"what": "events", "format": "json", "limit": 1_000_000}),
                         ("sessions csv, longest first", {"what": "sessions", "format": "csv", "sort": "duration",
                                                          "limit": 1_000_000})):
        before = highest = rss_mb()
        started = time.perf_counter()
        size = 0
        with http.stream("GET", "/api/dashboard/download", params=params) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():  # read and dropped: the client holds nothing either
                size += len(chunk)
                highest = max(highest, rss_mb())
        out[name] = {"s": time.perf_counter() - started, "mb": size / 1e6, "rss_growth_mb": highest - before}
    return out


def pg_sorted(dsn: str, total: int) -> dict[str, dict[str, float]]:
    """Sorted pages through the store on PostgreSQL (sessions rows loaded directly), with and without 0013's indexes.

    Store calls, not HTTP (the server's share is in the SQLite figures). Median ms of RUNS calls each.
    """
    import uuid

    import psycopg

    from vibekit_telemetry.query import parse_session_filter
    from vibekit_telemetry.store import SQLStore

    schema = "dashbench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    host = dsn.split("@", 1)[1] if "@" in dsn else "127.0.0.1:5432/test"
    store = SQLStore(f"postgresql+psycopg://postgres@{host}?options=-csearch_path%3D{schema}")
    out: dict[str, dict[str, float]] = {"with indexes": {}, "without indexes": {}}
    try:
        store.initialize()
        rows = [(f"s{n:07d}", AGENTS[n % 5], "completed" if n % 10 else "active", 1_700_000_000_000 + n * 1000,
                 float((n * 7919) % 600_000) if n % 10 else None, 1 + n % 4 + (n % 20 == 0) + (n % 10 != 0),
                 n % 4, int(n % 20 == 0)) for n in range(total)]
        with store.engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            with cur.copy("COPY sessions (id, category, status, start_time, duration, event_count, stream_count, "
                          "error_count) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE sessions")
        cases = {"longest first, page 1": {"sort": "duration"},
                 "longest first, page 100": {"sort": "duration", "offset": 99 * PAGE},
                 "shortest first, last page": {"sort": "duration", "order": "asc", "offset": total - PAGE},
                 "most events, page 1": {"sort": "event_count"},
                 "newest first, last page": {"offset": total - PAGE}}
        for label in ("with indexes", "without indexes"):
            if label == "without indexes":
                with store.engine.begin() as conn:
                    for name in SORT_INDEXES:
                        conn.exec_driver_sql(f"DROP INDEX {name}")
            for name, options in cases.items():
                out[label][name] = median_page_ms(store, parse_session_filter(limit=PAGE, **options), RUNS, PAGE)
    finally:
        store.shutdown()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return out


def main(argv: list[str] | None = None) -> None:
    """Seed the sessions (with and without the sort indexes), then time each request the Sessions page makes."""
    import httpx

    from vibekit_telemetry.events import now_ms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="DSN", help="also time sorted pages on PostgreSQL, e.g. "
                        "postgresql://postgres@127.0.0.1:5432/test (a schema is created and dropped)")
    parser.add_argument("--postgres-only", action="store_true", help="skip the SQLite part")
    args = parser.parse_args(argv)
    total = args.sessions
    base = now_ms() - total * 1000
    plain: list[tuple[str, str, dict[str, Any]]] = [
        ("agent filter, page 200", "/api/sessions", {"category": "codex", "offset": 200 * PAGE}),
        ("status filter, oldest first, deep page", "/api/sessions",
         {"status": "active", "order": "asc", "offset": int(total * 0.09)}),
        ("started in the last 24 h", "/api/sessions", {"since": "24h"}),
        ("prompt search", "/api/events", {"event_type": "start", "contains": "prompt 4242"}),
    ]
    sorted_cases: list[tuple[str, str, dict[str, Any]]] = [
        ("newest first (default), page 1", "/api/sessions", {}),
        ("newest first, middle page", "/api/sessions", {"offset": total // 2}),
        ("newest first, last page", "/api/sessions", {"offset": total - PAGE}),
        ("longest first, page 1", "/api/sessions", {"sort": "duration", "order": "desc"}),
        ("longest first, page 100", "/api/sessions", {"sort": "duration", "order": "desc", "offset": 99 * PAGE}),
        ("shortest first, last page", "/api/sessions", {"sort": "duration", "order": "asc", "offset": total - PAGE}),
        ("most events, page 1", "/api/sessions", {"sort": "event_count"}),
        ("most errors, page 1", "/api/sessions", {"sort": "error_count"}),
        ("longest codex sessions, page 1", "/api/sessions", {"sort": "duration", "category": "codex"}),
    ]
    results: dict[str, Any] = {"machine": machine(), "sessions": total, "runs": RUNS, "ms": {}, "sorted_ms": {},
                               "sorted_ms_without_indexes": {}, "seed_s": {}, "downloads": {}}
    summary = [f"Sessions page over {total:,} sessions (SQLite, median of {RUNS}, {PAGE} a page)"]
    if args.postgres:
        results["postgres_sorted_ms"] = pg_sorted(args.postgres, total)
        summary.append(f"  PostgreSQL, store calls ({total:,} sessions rows):   ours   without")
        pg = results["postgres_sorted_ms"]
        for name, ms in pg["with indexes"].items():
            summary.append(f"    {name:<40} {ms:8.1f} ms {pg['without indexes'][name]:8.1f} ms")
        if args.postgres_only:
            emit("sessions_pages", results, summary)
            return
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        # The writer's cost of the indexes: the same seed without them, then with them.
        without = open_telemetry(Path(tmp) / "without.db", sort_indexes=False)
        results["seed_s"]["without sort indexes"] = seed(without, total, base)
        without.shutdown()
        telemetry = open_telemetry(Path(tmp) / "s.db", sort_indexes=True)
        results["seed_s"]["with sort indexes"] = seed(telemetry, total, base)
        events = telemetry.get_stats().total_events
        summary.append(f"  seed: {events:,} events; {results['seed_s']['with sort indexes']:.1f} s with the sort "
                       f"indexes, {results['seed_s']['without sort indexes']:.1f} s without")
        server = telemetry.start_api_server(port=0, rate_limit="off", dashboard=True)
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                results["ms"] = time_cases(http, plain)
                results["sorted_ms"] = time_cases(http, sorted_cases)
                results["downloads"] = time_downloads(http)
                drop_sort_indexes(telemetry)  # the peer, same database, same server
                results["sorted_ms_without_indexes"] = time_cases(http, sorted_cases)
        finally:
            server.stop()
            telemetry.shutdown()
    for name, ms in results["ms"].items():
        summary.append(f"  {name:<42} {ms:8.1f} ms")
    summary.append(f"  {'sorted (migration 0013 indexes)':<42} {'ours':>8}  {'without':>9}")
    for name, ms in results["sorted_ms"].items():
        summary.append(f"  {name:<42} {ms:8.1f} ms {results['sorted_ms_without_indexes'][name]:8.1f} ms")
    for name, d in results["downloads"].items():
        summary.append(f"  download {name}: {d['mb']:.1f} MB in {d['s']:.1f} s, RSS at most "
                       f"{d['rss_growth_mb']:.1f} MB above its start (server in this process)")
    emit("sessions_pages", results, summary)


if __name__ == "__main__":
    main()
