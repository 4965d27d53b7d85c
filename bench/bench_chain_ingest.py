"""Ingest through the whole chain (track_start/track_stream/track_end, flush) against a hand-written loader.

sdk: a fresh Telemetry on a new SQLite file (everything default except block_timeout_ms, raised so
a caller faster than the writer waits for room instead of dropping); `--sessions` sessions of one
track_start, `--chunks` track_stream calls of 90 characters and one track_end, one after another on
one thread, timed from the first call to flush() returning (flush brings the text index up to date).
The run also times, with one perf_counter pair per writer batch (not per event), where the writer's
and the scheduler's time goes: the chain, the store write, the text index.

loader: reads back every row the sdk run left in its database (events in rowid order, sessions,
rollups, session_totals, session_rollups, store_meta, writer_runs, audit_log) before the clock
starts, creates a fresh database the way the store creates one (SQLStore.initialize(): same schema,
same indexes, alembic stamp), opens it with the store writer's pragmas, then inserts the rows with
executemany in transactions of 5,000 events (each preceded by the sessions those events open, so
the foreign key holds), the other tables in one transaction, rebuilds the FTS5 index in bulk
('rebuild') and sets the watermark, and checkpoints the WAL as flush() does. It then checks that
both databases hold the same row counts and the same text-search answers.

Each side runs in its own subprocess; the runs are interleaved (sdk, loader, sdk, loader …) and
the report quotes medians. `--profile` adds one more sdk run under cProfile (caller, writer and
scheduler threads each profiled) and saves the stats to bench/results/.

Target (issue 6, part 7): sdk events/s >= 0.8 x loader events/s.

    python bench/bench_chain_ingest.py                   # 1,000 sessions of 100 events, 3 runs
    python bench/bench_chain_ingest.py --sessions 200 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _util import BENCH_DIR, RESULTS_DIR, emit, machine, peak_rss_mb, ratio, remove_db

CHUNK_CHARS = 90
LOADER_BATCH = 5000  # events per transaction: the writer's max_batch_size default
CATEGORIES = ("claude", "codex", "gemini", "opencode")
ACTIONS = ("code", "chat", "ask")
# Every table a store writes rows into; the FTS5 shadow tables are rebuilt, not copied.
COPIED_TABLES = ("sessions", "events", "rollups", "session_totals", "session_rollups", "store_meta",
                 "writer_runs", "audit_log")


def chunk_pool(seed: int = 1234, size: int = 4096) -> list[str]:
    """Pre-built 90-character stream chunks, so making a call costs nothing next to tracking it."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz      ,.()=:_0123456789"
    return ["".join(rng.choice(alphabet) for _ in range(CHUNK_CHARS)) for _ in range(size)]


# -- the sdk side -----------------------------------------------------------------------------------

class Breakdown:
    """Wall and CPU time per (thread, step), measured around whole calls (one timer pair per batch or job).

    CPU time (time.thread_time) is the steadier figure on a shared machine: it leaves out the time a
    thread waited for a core or for the GIL.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)  # CPU time of the calling thread
        self.calls: dict[str, int] = defaultdict(int)
        self.writer_cpu_s = 0.0

    def wrap(self, owner: Any, attr: str, step: str, *, cpu: bool = False) -> None:
        """Replace owner.attr by a wrapper that adds its wall time to `<thread>.<step>`."""
        original: Callable[..., Any] = getattr(owner, attr)
        seconds, cpu_seconds, calls = self.seconds, self.cpu_seconds, self.calls
        pc, tt = time.perf_counter, time.thread_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, started_cpu = pc(), tt()
            try:
                return original(*args, **kwargs)
            finally:
                key = f"{_thread_role()}.{step}"
                now_cpu = tt()
                seconds[key] += pc() - started
                cpu_seconds[key] += now_cpu - started_cpu
                calls[key] += 1
                if cpu:
                    self.writer_cpu_s = now_cpu

        setattr(owner, attr, timed)


def _thread_role() -> str:
    name = threading.current_thread().name
    if "writer" in name:
        return "writer"
    if "scheduler" in name:
        return "scheduler"
    return "caller" if threading.current_thread() is threading.main_thread() else name


def instrument(breakdown: Breakdown) -> None:
    """Time the writer's stages at class level, before the Telemetry is made (per batch, not per event)."""
    from vibekit_telemetry.processing.chain import Chain
    from vibekit_telemetry.runtime import Runtime
    from vibekit_telemetry.store.sql import SQLStore

    breakdown.wrap(Runtime, "_write_batch", "batch", cpu=True)
    breakdown.wrap(Chain, "run", "chain")
    breakdown.wrap(SQLStore, "_write", "store_write")
    # One text-index chunk wherever it runs (writer catch-up, scheduler job, flush); stores without
    # _index_chunk index only through index_text.
    breakdown.wrap(SQLStore, "_index_chunk" if hasattr(SQLStore, "_index_chunk") else "index_text", "text_index")
    breakdown.wrap(SQLStore, "store_batch", "store_batch")
    breakdown.wrap(Runtime, "flush", "flush")


def track_workload(telemetry: Any, sessions: int, chunks: int, pool: list[str]) -> int:
    """Track the sessions one after another (text from the pre-built pool); return how many calls were made."""
    prompts = [f"Fix the bug in module {i}: " + pool[i][:40] for i in range(512)]
    track_start, track_stream, track_end = telemetry.track_start, telemetry.track_stream, telemetry.track_end
    calls = 0
    for n in range(sessions):
        category = CATEGORIES[n % len(CATEGORIES)]
        sid = track_start(category, ACTIONS[n % len(ACTIONS)], prompts[n % len(prompts)],
                          metadata={"model": f"{category}-model", "attempt": n % 3})
        base = n * 31
        for i in range(chunks):
            track_stream(sid, pool[(base + i) % len(pool)])
        track_end(sid, "completed")
        calls += chunks + 2
    return calls


def run_sdk(db: Path, sessions: int, chunks: int, profile_dir: Path | None) -> dict[str, Any]:
    """Track the workload into a fresh SQLite file and flush; return rates and the time breakdown."""
    breakdown = Breakdown()
    profilers: dict[str, Any] = {}
    if profile_dir is None:
        instrument(breakdown)
    else:
        _profile_threads(profilers)
    from vibekit_telemetry import Telemetry

    # Sustained ingest outruns the writer: the caller waits for room rather than dropping after the
    # default 100 ms (a lossy run would measure nothing). Everything else is the default.
    telemetry = Telemetry(db_path=str(db), block_timeout_ms=600_000)
    pool = chunk_pool()  # before the clock: making the text is not the SDK's cost
    caller_cpu0, cpu0 = time.thread_time(), time.process_time()
    if profile_dir is not None:
        profilers["caller"].enable()
    started = time.perf_counter()
    calls = track_workload(telemetry, sessions, chunks, pool)
    caller_done = time.perf_counter()
    flushed = telemetry.flush(3600)
    elapsed = time.perf_counter() - started
    if profile_dir is not None:
        profilers["caller"].disable()
    caller_cpu, cpu = time.thread_time() - caller_cpu0, time.process_time() - cpu0
    health = telemetry.get_health_status()
    telemetry.shutdown()
    written = health["events"]["written"]
    result: dict[str, Any] = {
        "events": calls, "written": written, "flushed": flushed, "dropped_total": health["dropped_total"],
        "elapsed_s": elapsed, "caller_s": caller_done - started, "events_per_s": written / elapsed,
        "caller_cpu_s": caller_cpu, "cpu_s": cpu, "writer_batches": health["writer"]["batches"],
        "avg_batch_events": health["writer"]["events_processed"] / max(1, health["writer"]["batches"]),
        "peak_rss_mb": peak_rss_mb(),
    }
    if profile_dir is None:
        result["breakdown_s"] = dict(sorted(breakdown.seconds.items()))
        result["breakdown_cpu_s"] = dict(sorted(breakdown.cpu_seconds.items()))
        result["breakdown_calls"] = dict(sorted(breakdown.calls.items()))
        result["writer_cpu_s"] = breakdown.writer_cpu_s
    else:
        result["profiles"] = _save_profiles(profilers, profile_dir)
        result["step_cpu_us_per_event"] = step_costs(sessions, chunks)
    return result


def _profile_threads(profilers: dict[str, Any]) -> None:
    """One cProfile per thread (cProfile sees only the thread that enabled it): caller, writer, scheduler."""
    import cProfile

    from vibekit_telemetry.scheduler import Scheduler
    from vibekit_telemetry.worker import BatchWorker

    profilers.update(caller=cProfile.Profile(), writer=cProfile.Profile(), scheduler=cProfile.Profile())

    def profiled(role: str, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def run(self: Any) -> None:
            profilers[role].enable()
            try:
                original(self)
            finally:
                profilers[role].disable()
        return run

    BatchWorker._run = profiled("writer", BatchWorker._run)  # type: ignore[method-assign,assignment]
    Scheduler._loop = profiled("scheduler", Scheduler._loop)  # type: ignore[method-assign,assignment]


def _save_profiles(profilers: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Dump each thread's stats (.prof, for snakeviz/pstats) and a text top list beside them."""
    import io
    import pstats

    out_dir.mkdir(parents=True, exist_ok=True)
    saved: dict[str, str] = {}
    text = io.StringIO()
    for role, profiler in profilers.items():
        path = out_dir / f"chain_ingest_{role}.prof"
        profiler.dump_stats(str(path))
        saved[role] = str(path.relative_to(BENCH_DIR.parent))
        stats = pstats.Stats(profiler, stream=text)
        text.write(f"\n===== {role} thread: by cumulative time =====\n")
        stats.strip_dirs().sort_stats("cumulative").print_stats(30)
        text.write(f"\n===== {role} thread: by own time =====\n")
        stats.sort_stats("tottime").print_stats(25)
    summary = out_dir / "chain_ingest_profile.txt"
    summary.write_text(text.getvalue(), encoding="utf-8")
    saved["text"] = str(summary.relative_to(BENCH_DIR.parent))
    return saved


def step_costs(sessions: int, chunks: int, repeats: int = 3) -> dict[str, float]:
    """CPU microseconds per event of each chain step and of the store's planning, run alone (best of repeats).

    The events are what track_stream queues (a TelemetryEvent with the session id and the chunk), run
    through a fresh default chain one step at a time over the whole list, so the timer cost is per
    step, not per event; then the store's plan_batch and row building in batches of 5,000.
    """
    from vibekit_telemetry.config import load_config
    from vibekit_telemetry.events import TelemetryEvent
    from vibekit_telemetry.processing import build_chain
    from vibekit_telemetry.store._batch import plan_batch

    pool = chunk_pool()
    best: dict[str, float] = {}
    for _ in range(repeats):
        chain = build_chain(load_config(None))
        enrich = chain.get("enrich")
        assert enrich is not None
        ts = int(time.time() * 1000)
        raw: list[TelemetryEvent] = []
        for n in range(sessions):
            sid = f"session-{n}"
            enrich.process(TelemetryEvent("start", CATEGORIES[n % 4], sid, ACTIONS[n % 3], timestamp=ts))
            raw += [TelemetryEvent("stream", None, sid, None, None, None, pool[(n * 31 + i) % len(pool)], None,
                                   None, ts + i) for i in range(chunks)]
        costs: dict[str, float] = {}
        started = time.thread_time()
        events = [e for e in (chain.normaliser.process(r) for r in raw) if e is not None]
        costs["chain.normalise"] = time.thread_time() - started
        for step in chain.processors:
            started = time.thread_time()
            events = [e for e in (step.process(e) for e in events) if e is not None]
            costs[f"chain.{step.name}"] = time.thread_time() - started
        started = time.thread_time()
        for i in range(0, len(events), LOADER_BATCH):
            plan = plan_batch(events[i:i + LOADER_BATCH], {})
            plan.event_rows()
        costs["store.plan_batch+rows"] = time.thread_time() - started
        for key, value in costs.items():
            per_event = value / len(raw) * 1e6
            best[key] = min(best.get(key, per_event), per_event)
    best["chain.total"] = sum(v for k, v in best.items() if k.startswith("chain."))
    return best


# -- the loader side --------------------------------------------------------------------------------

def read_rows(db: Path) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every table's columns and rows (events in rowid order, so the copy has the same layout)."""
    import sqlite3

    conn = sqlite3.connect(str(db))
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for table in COPIED_TABLES:
        order = " ORDER BY rowid" if table == "events" else ""
        cur = conn.execute(f"SELECT * FROM {table}{order}")
        tables[table] = ([d[0] for d in cur.description], cur.fetchall())
    conn.close()
    return tables


def _insert_sql(table: str, columns: list[str], upsert_key: str | None = None) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})"
    if upsert_key:
        sql += f' ON CONFLICT ("{upsert_key}") DO UPDATE SET value = excluded.value'
    return sql


def run_loader(source: Path, db: Path) -> dict[str, Any]:
    """Insert the sdk run's rows into a fresh copy of the schema, then index the text in bulk."""
    import sqlite3

    from vibekit_telemetry.store import dialects
    from vibekit_telemetry.store.sql import WRITER_CACHE_KB, SQLStore

    tables = read_rows(source)
    store = SQLStore(str(db))  # the fresh database exactly as the store creates one
    store.initialize()
    store.shutdown()
    ev_cols, ev_rows = tables["events"]
    se_cols, se_rows = tables["sessions"]
    sid_at, eid_at = ev_cols.index("session_id"), se_cols.index("id")
    sessions_by_id = {row[eid_at]: row for row in se_rows}
    # The sessions each chunk of events opens (in first-event order), worked out before the clock.
    plan: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
    opened: set[str] = set()
    for i in range(0, len(ev_rows), LOADER_BATCH):
        chunk = ev_rows[i:i + LOADER_BATCH]
        new = []
        for row in chunk:
            sid = row[sid_at]
            if sid is not None and sid not in opened:
                opened.add(sid)
                new.append(sessions_by_id[sid])
        plan.append((new, chunk))
    insert_event, insert_session = _insert_sql("events", ev_cols), _insert_sql("sessions", se_cols)
    rest = [(t, _insert_sql(t, cols, "key" if t == "store_meta" else None), rows)
            for t, (cols, rows) in tables.items() if t not in ("events", "sessions") and rows]

    conn = sqlite3.connect(str(db), isolation_level=None)
    dialects.apply_sqlite_pragmas(conn, 5000, True)
    conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KB}")  # as the store's writer connection
    conn.execute("PRAGMA temp_store = FILE")
    started, cpu0 = time.perf_counter(), time.process_time()
    cur = conn.cursor()
    for new, chunk in plan:
        cur.execute("BEGIN IMMEDIATE")
        if new:
            cur.executemany(insert_session, new)
        cur.executemany(insert_event, chunk)
        cur.execute("COMMIT")
    cur.execute("BEGIN IMMEDIATE")
    for _table, sql, rows in rest:
        cur.executemany(sql, rows)
    cur.execute("COMMIT")
    inserted, inserted_cpu = time.perf_counter(), time.process_time()
    cur.execute("BEGIN IMMEDIATE")
    cur.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
    cur.execute("UPDATE store_meta SET value = (SELECT COALESCE(MAX(rowid), 0) FROM events) "
                "WHERE key = 'fts_indexed_rowid'")
    cur.execute("COMMIT")
    cur.execute("PRAGMA wal_checkpoint(PASSIVE)")  # as flush() does
    finished, cpu = time.perf_counter(), time.process_time() - cpu0
    conn.close()
    n = len(ev_rows)
    elapsed = finished - started
    return {"events": n, "elapsed_s": elapsed, "events_per_s": n / elapsed, "cpu_s": cpu,
            "insert_s": inserted - started, "index_s": finished - inserted,
            "insert_cpu_s": inserted_cpu - cpu0, "index_cpu_s": cpu - (inserted_cpu - cpu0),
            "insert_events_per_s": n / (inserted - started), "peak_rss_mb": peak_rss_mb(),
            "same_rows": same_rows(source, db)}


def same_rows(a: Path, b: Path) -> dict[str, Any]:
    """Row counts of every copied table and two text searches, in both databases: they must match."""
    import sqlite3

    def facts(db: Path) -> dict[str, int]:
        conn = sqlite3.connect(str(db))
        out = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COPIED_TABLES}
        for term in ("module 7", "abc"):
            out[f"fts:{term}"] = conn.execute(
                "SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH ?", (f'"{term}"',)).fetchone()[0]
        conn.close()
        return out

    fa, fb = facts(a), facts(b)
    return {"equal": fa == fb, "sdk": fa, "loader": fb}


# -- orchestration ----------------------------------------------------------------------------------

def _child(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH_DIR)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["events_per_s"])
    return ordered[len(ordered) // 2]


def summarize_breakdown(sdk: dict[str, Any]) -> list[str]:
    """Human lines: where the sdk run's time went, per thread and step (wall / CPU seconds)."""
    wall, cpu, elapsed = sdk["breakdown_s"], sdk["breakdown_cpu_s"], sdk["elapsed_s"]

    def both(key: str, minus: tuple[str, ...] = ()) -> str:
        w = wall.get(key, 0.0) - sum(wall.get(k, 0.0) for k in minus)
        c = cpu.get(key, 0.0) - sum(cpu.get(k, 0.0) for k in minus)
        return f"{w:.2f}/{c:.2f} s"

    index = {role: f"{role}.text_index" for role in ("writer", "scheduler", "caller")}
    return [
        f"  sdk run (median run): wall {elapsed:.2f} s, process CPU {sdk['cpu_s']:.2f} s; caller busy "
        f"{sdk['caller_s']:.2f} s (CPU {sdk['caller_cpu_s']:.2f} s); figures below are wall/CPU",
        f"    writer batches {both('writer.batch')}: chain {both('writer.chain')}, store write "
        f"{both('writer.store_write')}, text index {both(index['writer'])}, rest "
        f"{both('writer.batch', ('writer.chain', 'writer.store_write', index['writer']))}",
        f"    scheduler text index {both(index['scheduler'])}; flush() {both('caller.flush')} of which text "
        f"index {both(index['caller'])}; chain on the caller (track_start) {both('caller.chain')}",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run sdk and loader interleaved, print the JSON line and a summary; return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=98, help="stream chunks per session")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="also one cProfile'd sdk run, saved to bench/results/")
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--child", choices=("sdk", "loader", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        db = Path(args.db)
        remove_db(db)
        if args.child == "loader":
            result = run_loader(Path(args.source), db)
        else:
            result = run_sdk(db, args.sessions, args.chunks,
                             RESULTS_DIR if args.child == "profile" else None)
        result["db_bytes"] = os.path.getsize(db)
        print(json.dumps(result))
        return result

    sdk_runs: list[dict[str, Any]] = []
    loader_runs: list[dict[str, Any]] = []
    size = ["--sessions", str(args.sessions), "--chunks", str(args.chunks)]
    with tempfile.TemporaryDirectory(prefix="vk-bench-chain-", dir=args.tmpdir) as tmp:
        sdk_db, loader_db = Path(tmp) / "sdk.db", Path(tmp) / "loader.db"
        for _ in range(args.runs):
            sdk_runs.append(_child(["--child", "sdk", "--db", str(sdk_db), *size]))
            loader_runs.append(_child(["--child", "loader", "--db", str(loader_db), "--source", str(sdk_db)]))
        profile = (_child(["--child", "profile", "--db", str(Path(tmp) / "profiled.db"), *size])
                   if args.profile else None)
    sdk_rates = [r["events_per_s"] for r in sdk_runs]
    loader_rates = [r["events_per_s"] for r in loader_runs]
    run_ratios = [ratio(s, lo) for s, lo in zip(sdk_rates, loader_rates, strict=True)]
    sdk, loader = _median_run(sdk_runs), _median_run(loader_runs)
    results: dict[str, Any] = {
        "machine": machine(), "sessions": args.sessions, "events_per_session": args.chunks + 2,
        "runs": args.runs, "sdk_events_per_s": statistics.median(sdk_rates),
        "loader_events_per_s": statistics.median(loader_rates),
        "ratio": ratio(statistics.median(sdk_rates), statistics.median(loader_rates)),
        "ratio_per_run": run_ratios,
        # The same comparison in CPU seconds (loader CPU / sdk CPU): what the work costs, without the
        # waiting a shared machine adds to wall time.
        "cpu_ratio": statistics.median(lo["cpu_s"] for lo in loader_runs) / statistics.median(
            r["cpu_s"] for r in sdk_runs), "sdk": sdk, "loader": loader, "sdk_runs": sdk_runs,
        "loader_runs": loader_runs, "profile": profile,
    }
    results["targets_met"] = {"ratio_ge_0.8": results["ratio"] >= 0.8,
                              "same_rows": all(r["same_rows"]["equal"] for r in loader_runs),
                              "nothing_dropped": all(r["dropped_total"] == 0 and r["flushed"] for r in sdk_runs)}
    summary = [
        f"chain ingest: {args.sessions:,} sessions x {args.chunks + 2} events into SQLite, median of {args.runs}",
        f"  sdk (track_* + flush): {results['sdk_events_per_s']:,.0f} events/s "
        f"({', '.join(f'{r:,.0f}' for r in sdk_rates)}), peak RSS {sdk['peak_rss_mb']:.0f} MB, "
        f"{sdk['writer_batches']} batches of {sdk['avg_batch_events']:.0f} events on average",
        f"  loader (executemany + FTS rebuild): {results['loader_events_per_s']:,.0f} events/s "
        f"({', '.join(f'{r:,.0f}' for r in loader_rates)}); insert alone {loader['insert_events_per_s']:,.0f} "
        f"events/s, FTS rebuild {loader['index_s']:.2f} s of {loader['elapsed_s']:.2f} s",
        f"  ratio {results['ratio']:.2f} (per run {', '.join(f'{r:.2f}' for r in run_ratios)}; target >= 0.8); "
        f"targets: {results['targets_met']}",
        f"  CPU seconds: sdk {statistics.median(r['cpu_s'] for r in sdk_runs):.2f}, loader "
        f"{statistics.median(r['cpu_s'] for r in loader_runs):.2f} (insert {loader['insert_cpu_s']:.2f}, FTS "
        f"rebuild {loader['index_cpu_s']:.2f}): CPU ratio {results['cpu_ratio']:.2f}",
        *summarize_breakdown(sdk),
    ]
    if profile is not None:
        summary.append(f"  profile ({profile['events_per_s']:,.0f} events/s under cProfile): "
                       + ", ".join(profile["profiles"].values()))
        summary.append("  CPU us per stream event, each step alone: " + ", ".join(
            f"{k} {v:.2f}" for k, v in profile["step_cpu_us_per_event"].items()))
    emit("chain_ingest", results, summary)
    return results


if __name__ == "__main__":
    main()
