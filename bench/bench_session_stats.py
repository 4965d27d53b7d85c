"""Sessions pages over 100,000 sessions on SQLite before and after the store gathers planner statistics.

The same store, the same pages (store calls, 50 a page, median of RUNS): first with no sqlite_stat1
(what every SQLite store had before the store-upkeep job analyzed it), then after `store.upkeep()`,
the job's own function, whose cost is timed too (and that of a second run, which has nothing to do).
Deep pages are asked by offset and by cursor (the previous page's next_cursor), without and with statistics.

    python bench/bench_session_stats.py                  # 100,000 sessions
    python bench/bench_session_stats.py --sessions 20000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, machine, median_page_ms

AGENTS = ("claude", "codex", "gemini", "opencode", "grok")
PAGE = 50
RUNS = 5
# Five agents share the sessions; "longest codex sessions, page 200" (a deep page) needs 200 full pages
# of one of them.
MIN_SESSIONS = 5 * 200 * PAGE


def _enough_sessions(text: str) -> int:
    value = int(text)
    if value < MIN_SESSIONS:
        raise argparse.ArgumentTypeError(f"{value:,} sessions: every case asks for a full page, and page 200 "
                                         f"of one agent's sessions needs at least {MIN_SESSIONS:,}")
    return value
T0 = 1_700_000_000_000


def seed(store: Any, total: int) -> float:
    """Store `total` sessions as bench_sessions_pages does (90 % ended, 0-3 chunks, 5 % an error); seconds."""
    from vibekit_telemetry.events import TelemetryEvent

    started = time.perf_counter()
    for chunk in range(0, total, 5000):
        batch: list[TelemetryEvent] = []
        for n in range(chunk, min(total, chunk + 5000)):
            sid, at = f"s{n:07d}", T0 + n * 1000
            batch.append(TelemetryEvent("start", AGENTS[n % 5], session_id=sid, label=f"prompt {n}", timestamp=at))
            batch += [TelemetryEvent("stream", None, session_id=sid, stream_data="chunk", timestamp=at + 1 + k)
                      for k in range(n % 4)]
            if n % 20 == 0:
                batch.append(TelemetryEvent("error", None, session_id=sid, label="boom", timestamp=at + 5))
            if n % 10:
                batch.append(TelemetryEvent("end", None, session_id=sid, timestamp=at + (n * 7919) % 600_000))
        store.store_batch(batch)
    return time.perf_counter() - started


CASES: dict[str, dict[str, Any]] = {
    "longest codex sessions, page 1": {"sort": "duration", "category": "codex"},
    "longest codex sessions, page 20": {"sort": "duration", "category": "codex", "offset": 19 * PAGE},
    "most errors of claude, page 1": {"sort": "error_count", "category": "claude"},
    "completed, longest first, page 1": {"sort": "duration", "status": "completed"},
    "codex, newest first, page 1": {"category": "codex"},
    "active, oldest first, page 1": {"status": "active", "order": "asc"},
    "newest first (no filter), page 1": {},
}


def time_pages(store: Any) -> dict[str, float]:
    """Median ms of RUNS get_sessions calls per case."""
    from vibekit_telemetry.query import parse_session_filter

    out: dict[str, float] = {}
    for name, options in CASES.items():
        out[name] = median_page_ms(store, parse_session_filter(limit=PAGE, **options), RUNS, PAGE)
    return out


def time_deep_pages(store: Any, total: int) -> dict[str, dict[str, float]]:
    """Median ms of RUNS calls of deep pages, asked by offset and by the cursor of the row before them."""
    from vibekit_telemetry.query import parse_session_filter, session_cursor

    deep = {"newest first, middle page": ({}, total // 2), "newest first, last page": ({}, total - PAGE),
            "longest first, last page": ({"sort": "duration"}, total - PAGE),
            "shortest first, last page": ({"sort": "duration", "order": "asc"}, total - PAGE),
            "longest codex sessions, page 200": ({"sort": "duration", "category": "codex"}, 199 * PAGE)}
    out: dict[str, dict[str, float]] = {"offset": {}, "cursor": {}}
    for name, (options, offset) in deep.items():
        before = parse_session_filter(limit=1, offset=offset - 1, **options)
        cursor = session_cursor(store.get_sessions(before)[0], before)
        for way, f in (("offset", parse_session_filter(limit=PAGE, offset=offset, **options)),
                       ("cursor", parse_session_filter(limit=PAGE, cursor=cursor, **options))):
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                page = store.get_sessions(f)
                times.append((time.perf_counter() - started) * 1000)
            assert len(page) == PAGE
            out[way][name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> None:
    """Seed, time the pages without statistics, run the upkeep job, time them again."""
    from vibekit_telemetry.store import SQLStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=_enough_sessions, default=100_000,
                        help=f"at least {MIN_SESSIONS:,}: page 200 of one agent's sessions must be full")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "sessions": args.sessions, "runs": RUNS}
    with tempfile.TemporaryDirectory(prefix="bench-session-stats-") as tmp:
        store = SQLStore(Path(tmp) / "s.db")
        try:
            store.initialize()
            results["seed_s"] = seed(store, args.sessions)
            store.flush()
            results["before_ms"] = time_pages(store)
            results["deep_ms_before"] = time_deep_pages(store, args.sessions)
            started = time.perf_counter()
            store.upkeep()
            results["upkeep_ms"] = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            store.upkeep()
            results["upkeep_again_ms"] = (time.perf_counter() - started) * 1000
            results["after_ms"] = time_pages(store)
            results["deep_ms"] = time_deep_pages(store, args.sessions)
        finally:
            store.shutdown()
    summary = [f"Sessions pages over {args.sessions:,} sessions, SQLite store calls (median of {RUNS}, {PAGE} a page)",
               f"  {'':<36} {'no stats':>9} {'after upkeep':>13}"]
    for name, ms in results["before_ms"].items():
        summary.append(f"  {name:<36} {ms:8.1f} ms {results['after_ms'][name]:10.1f} ms")
    summary.append(f"  store-upkeep job: {results['upkeep_ms']:.0f} ms (analyzed), "
                   f"again {results['upkeep_again_ms']:.1f} ms")
    summary.append(f"  {'deep pages: offset / cursor':<36} {'no stats':>9} {'after upkeep':>13}")
    for name in results["deep_ms"]["offset"]:
        no, yes = results["deep_ms_before"], results["deep_ms"]
        summary.append(f"  {name:<36} {no['offset'][name]:6.1f} / {no['cursor'][name]:4.1f} ms "
                       f"{yes['offset'][name]:6.1f} / {yes['cursor'][name]:4.1f} ms")
    emit("session_stats", results, summary)


if __name__ == "__main__":
    main()
