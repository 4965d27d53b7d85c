"""Session lookup and stats latency on databases of 1M and 10M events.

The databases are built once and cached under bench/.cache/ (gitignored): SQLStore.initialize()
creates the schema; then, for speed, the three secondary event indexes and the FTS triggers are
dropped, the rows of the usual workload (spread over the last 30 days) are inserted raw together
with their final session rows, the minute/hour/day rollups, the per-category session_totals and
the hour/day session_rollups the store maintains, and the indexes, triggers and the FTS index
(with its watermark) are rebuilt from their own DDL, so the file ends up exactly as the store would
have left it after flush().
Then, through a fresh SQLStore (as the CLI and API read):

- get_session(id) on random stored ids (p50/p99), with and without its events,
- get_stats() with the default filter (totals, agents, range, size, avg duration).

Target (DESIGN.md): session lookup on 10M events p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _util import (
    CACHE_DIR,
    INSERT_EVENT,
    INSERT_SESSION,
    Row,
    emit,
    iter_rows,
    machine,
    peak_rss_mb,
    remove_db,
    summarize_ns,
)

ROLLUP_PERIODS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
SPAN_MS = 30 * 86_400_000
# Session counters by start time (session_rollups), counted as migration 0008 backfills them; the same
# SQL on SQLite and PostgreSQL.
SESSION_ROLLUPS_SQL = [
    "INSERT INTO session_rollups (period, bucket_start, category, sessions, active_sessions, "
    f"ended_sessions, duration_sum, duration_count) SELECT '{period}', (start_time / {size}) * {size}, "
    "COALESCE(category, ''), COUNT(*), SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), "
    "COUNT(end_time), COALESCE(SUM(CASE WHEN end_time IS NOT NULL THEN duration END), 0), "
    "COUNT(CASE WHEN end_time IS NOT NULL THEN duration END) FROM sessions GROUP BY 2, 3"
    for period, size in (("hour", ROLLUP_PERIODS["hour"]), ("day", ROLLUP_PERIODS["day"]))]


class Sums:
    """The event rollups and per-category session_totals the writer keeps, counted from the raw rows."""

    def __init__(self) -> None:
        # (period, bucket_start, category, action, event_type) -> count, error_count
        self.rollups: dict[tuple[str, int, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        # category -> events, error_events, sessions, active, ended, duration_sum, duration_count
        self.totals: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0, 0])

    def add(self, session: Row, rows: list[Row]) -> None:
        """Count one session (its final row) and its event rows."""
        t = self.totals[session[1] or ""]
        t[2] += 1
        t[3] += session[3] == "active"
        if session[5] is not None:
            t[4] += 1
            if session[6] is not None:
                t[5] += session[6]
                t[6] += 1
        for row in rows:
            kind, category, action, ts = row[2], row[3], row[4] or "", row[10]
            self.totals[category or ""][0] += 1
            self.totals[category or ""][1] += kind == "error"
            for period, size in ROLLUP_PERIODS.items():
                bucket = self.rollups[(period, ts // size * size, category, action, kind)]
                bucket[0] += 1
                bucket[1] += kind == "error"

    def rollup_rows(self) -> list[Row]:
        """(period, bucket_start, category, action, event_type, count, error_count) rows."""
        return [(*key, c, e) for key, (c, e) in self.rollups.items()]

    def totals_rows(self) -> list[Row]:
        """session_totals rows in column order (category first)."""
        return [(k, *v) for k, v in self.totals.items()]


def batches(events: int, first_ts: int, sums: Sums, size: int) -> Iterator[tuple[list[Row], list[Row]]]:
    """The workload over SPAN_MS from first_ts as (session rows, event rows) of about `size` events; counted in sums."""
    step = max(1, SPAN_MS // max(1, events))
    sessions: list[Row] = []
    rows: list[Row] = []
    for session, event_rows in iter_rows(events, first_ts, step):
        sessions.append(session)
        rows.extend(event_rows)
        sums.add(session, event_rows)
        if len(rows) >= size:
            yield sessions, rows
            sessions, rows = [], []
    if rows or sessions:
        yield sessions, rows


def build(path: Path, events: int) -> dict[str, Any]:
    """Build the database of `events` events at path (see the module docstring)."""
    from vibekit_telemetry.store.sql import SQLStore

    started = time.perf_counter()
    tmp = path.with_name(path.name + ".building")
    remove_db(tmp)
    store = SQLStore(str(tmp))
    store.initialize()
    store.shutdown()
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    deferred = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND "
        "((type = 'index' AND tbl_name = 'events') OR (type = 'trigger' AND tbl_name = 'events'))").fetchall()
    for kind, name, _ in deferred:
        conn.execute(f"DROP {kind.upper()} {name}")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    sums = Sums()
    first_ts = int(time.time() * 1000) - SPAN_MS
    for session_batch, event_batch in batches(events, first_ts, sums, 200_000):
        conn.execute("BEGIN")
        conn.executemany(INSERT_SESSION, session_batch)
        conn.executemany(INSERT_EVENT, event_batch)
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO rollups (period, bucket_start, category, action, event_type, count, error_count, "
        "duration_sum, duration_count, duration_min, duration_max) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, NULL, NULL)", sums.rollup_rows())
    conn.executemany(
        "INSERT INTO session_totals (category, events, error_events, sessions, active_sessions, ended_sessions, "
        "duration_sum, duration_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sums.totals_rows())
    for sql in SESSION_ROLLUPS_SQL:
        conn.execute(sql)
    conn.execute("COMMIT")
    inserted = time.perf_counter() - started
    for kind, _, sql in deferred:
        if kind == "index":
            conn.execute(sql)
    for kind, _, sql in deferred:
        if kind == "trigger":
            conn.execute(sql)
    has_fts = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_fts'").fetchone() is not None
    if has_fts:
        conn.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
        conn.execute("UPDATE store_meta SET value = (SELECT MAX(rowid) FROM events) "
                     "WHERE key = 'fts_indexed_rowid'")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("ANALYZE")
    conn.close()
    tmp.rename(path)
    return {"build_s": time.perf_counter() - started, "insert_s": inserted, "fts": has_fts}


def measure(path: Path, lookups: int) -> dict[str, Any]:
    from vibekit_telemetry.query import StatsFilter
    from vibekit_telemetry.store.sql import SQLStore

    conn = sqlite3.connect(str(path))
    total_sessions = conn.execute("SELECT MAX(rowid) FROM sessions").fetchone()[0]
    rng = random.Random(7)
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM sessions WHERE rowid IN (" + ",".join(
            str(rng.randint(1, total_sessions)) for _ in range(lookups)) + ")")]
    conn.close()
    rng.shuffle(ids)
    store = SQLStore(str(path))
    store.initialize()
    for sid in ids[:50]:  # warm the connection pool and the statement caches
        store.get_session(sid)
    plain: list[int] = []
    pc = time.perf_counter_ns
    for sid in ids:
        t0 = pc()
        found = store.get_session(sid)
        plain.append(pc() - t0)
        assert found is not None
    with_events: list[int] = []
    for sid in ids[: max(1, len(ids) // 5)]:
        t0 = pc()
        found = store.get_session(sid, with_events=True)
        with_events.append(pc() - t0)
        assert found is not None and found.events
    stats_ns: list[int] = []
    stats = None
    for _ in range(11):
        t0 = pc()
        stats = store.get_stats(StatsFilter())
        stats_ns.append(pc() - t0)
    assert stats is not None
    # Dashboard-style windows: the last 24 hours and the last 7 days by agent (day + hour rollups, raw
    # events only for the partial hours at the edges); and a text search (FTS up to the watermark).
    now = int(time.time() * 1000)
    windowed: dict[str, float] = {}
    for name, f in (("last_24h", StatsFilter(since=now - 86_400_000)),
                    ("last_7d_by_category", StatsFilter(since=now - 7 * 86_400_000, group_by="category"))):
        runs = []
        for _ in range(7):
            t0 = pc()
            store.get_stats(f)
            runs.append(pc() - t0)
        windowed[name] = sorted(runs)[len(runs) // 2] / 1e6
    from vibekit_telemetry.query import QueryFilter

    contains_runs = []
    for needle in ("abc", "Fix the bug in module 42", "xyz(", "429 Too"):
        t0 = pc()
        store.query(QueryFilter(contains=needle, limit=100))
        contains_runs.append(pc() - t0)
    store.shutdown()
    s = sorted(stats_ns)
    return {
        "get_stats_window_ms_median": windowed,
        "query_contains_limit100_ms": [round(x / 1e6, 2) for x in contains_runs],
        "get_session": summarize_ns(plain),
        "get_session_with_events": summarize_ns(with_events),
        "get_stats_ms": {"median": s[len(s) // 2] / 1e6, "max": s[-1] / 1e6, "first": stats_ns[0] / 1e6},
        "stats_total_events": stats.total_events,
        "stats_total_sessions": stats.total_sessions,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--rebuild", action="store_true", help="ignore cached databases")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "sizes": {}}
    summary = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        path = CACHE_DIR / f"lookup-{size}.db"
        built = None
        if args.rebuild or not path.exists():
            remove_db(path)
            built = build(path, size)
        entry: dict[str, Any] = {"db_bytes": path.stat().st_size, "build": built or "cached"}
        if not args.build_only:
            entry.update(measure(path, args.lookups))
            g, st = entry["get_session"], entry["get_stats_ms"]
            summary.append(f"  {size:>11,} events ({entry['db_bytes'] / 1e9:.2f} GB): get_session p50 "
                           f"{g['p50_us']:.0f} us p99 {g['p99_us']:.0f} us; with events p50 "
                           f"{entry['get_session_with_events']['p50_us']:.0f} us; get_stats median "
                           f"{st['median']:.1f} ms")
        results["sizes"][str(size)] = entry
    results["peak_rss_mb"] = peak_rss_mb()
    largest = max(results["sizes"], key=int) if results["sizes"] else None
    if largest and "get_session" in results["sizes"][largest]:
        big = results["sizes"][largest]
        results["targets_met"] = {
            f"session_lookup_p50_le_1ms_at_{largest}": big["get_session"]["p50_us"] <= 1000,
            f"stats_le_20ms_at_{largest}": big["get_stats_ms"]["median"] <= 20,
        }
        summary.append(f"  targets: {results['targets_met']}")
    emit("lookup", results, ["session lookup and stats", *summary])
    return results


if __name__ == "__main__":
    main()
