"""SQLStore.store_batch against raw sqlite3.executemany of the same rows into the same schema.

    python bench/raw_vs_store.py [--events 200000] [--batch 1000] [--no-indexes]

Both sides get a freshly migrated database (same tables, indexes and FTS triggers); the raw side
inserts the event row tuples only, the store also maintains sessions and rollups. Prints events/s
for each and the ratio (DESIGN.md budget: >= 0.8).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.ids import uuid7
from vibekit_telemetry.query import StatsFilter
from vibekit_telemetry.store.sql import SQLStore

AGENTS = ("claude", "codex", "gemini", "opencode")


def make_events(n: int, per_session: int = 50) -> list[TelemetryEvent]:
    """A realistic mix: per session one start, coalesced stream chunks, one end."""
    t0 = 1_700_000_000_000
    out: list[TelemetryEvent] = []
    for i in range(n):
        sid = f"s{i // per_session}"
        k = i % per_session
        ts = t0 + i * 7
        kind = "start" if k == 0 else "end" if k == per_session - 1 else "stream"
        meta = {"status": "completed"} if kind == "end" else None
        e = TelemetryEvent(kind, AGENTS[(i // per_session) % 4], session_id=sid,
                           action="chat" if kind == "start" else None,
                           label="write a function that sorts" if kind == "start" else None,
                           stream_data=f"chunk {k} of output text, tokens..." if kind == "stream" else None,
                           timestamp=ts, metadata=meta, context={"environment": "bench"},
                           service_name="bench", service_version="1", event_id=uuid7(ts))
        e.metadata_json = json.dumps(meta) if meta else None
        e.context_json = json.dumps(e.context)
        out.append(e)
    return out


def fresh(path: Path, enable_indexes: bool) -> SQLStore:
    """A migrated, empty store at path."""
    store = SQLStore(path, enable_indexes=enable_indexes)
    store.initialize()
    return store


def run(n: int, batch: int, enable_indexes: bool) -> None:
    """Time both sides and print the figures."""
    events = make_events(n)
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.db"
        store = fresh(raw_path, enable_indexes)
        insert_sql = store._statements.insert_events
        store.shutdown()
        # Sessions must exist for the foreign key: insert them outside the timed section.
        conn = sqlite3.connect(raw_path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON",
                       "cache_size = -32000"):
            conn.execute(f"PRAGMA {pragma}")
        conn.executemany("INSERT INTO sessions (id, status, start_time) VALUES (?, 'active', 0)",
                         [(s,) for s in sorted({e.session_id for e in events if e.session_id})])
        rows = [(e.event_id, e.session_id, e.event_type, e.category, e.action, e.label, e.value,
                 e.stream_data, e.sandbox_id, e.repo_url, e.timestamp, e.duration, e.metadata_json,
                 e.context_json, e.service_name, e.service_version) for e in events]
        start = time.perf_counter()
        for i in range(0, n, batch):
            conn.execute("BEGIN")
            conn.executemany(insert_sql, rows[i:i + batch])
            conn.execute("COMMIT")
        raw_s = time.perf_counter() - start
        conn.close()

        store = fresh(Path(tmp) / "store.db", enable_indexes)
        start = time.perf_counter()
        for i in range(0, n, batch):
            store.store_batch(events[i:i + batch])
        store_s = time.perf_counter() - start
        stored = store.get_stats(StatsFilter())
        assert stored.total_events == n, stored.total_events
        store.shutdown()
    raw_rate, store_rate = n / raw_s, n / store_s
    print(f"events={n} batch={batch} indexes={'on' if enable_indexes else 'off'}")
    print(f"raw executemany : {raw_rate:>10,.0f} events/s  ({raw_s:.2f} s)")
    print(f"SQLStore        : {store_rate:>10,.0f} events/s  ({store_s:.2f} s)")
    print(f"ratio           : {store_rate / raw_rate:.2f}  (budget >= 0.80)")


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--no-indexes", action="store_true")
    args = parser.parse_args()
    run(args.events, args.batch, not args.no_indexes)


if __name__ == "__main__":
    main()
