"""Export 1M events: seconds and peak RSS per format, beside the fastest library alone in the same run.

The database is bench_lookup's cached one (the usual workload: sessions of a start, ~20 stream
chunks and an end, over 30 days), built on first use. Each measurement runs in its own process so
its peak RSS is its own:

- ours: `export_events(store, fmt)` on a fresh SQLStore, as `telemetry export` runs it
  (iter_rows keyset pages of raw tuples -> format writer -> file);
- peer, write only: the same rows already in memory as dicts (loaded before the clock starts),
  written by orjson (NDJSON) or msgspec, or pyarrow (Parquet) - the library alone;
- peer, read + write (the streaming library peer of the targets): raw sqlite3 cursor over the same
  table in one ordered SELECT, rows straight into orjson / pyarrow.

Ours and the streaming peer run in interleaved rounds (--repeat, median); the write-only peers once.
Targets (issue 11): ours at most twice the streaming library peer; peak RSS <= 150 MB.

    python bench/bench_export.py                     # 1M events, ndjson,parquet,json,csv, 3 rounds
    python bench/bench_export.py --events 200000 --formats ndjson --repeat 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import BENCH_DIR, CACHE_DIR, emit, machine, peak_rss_mb

COLUMNS = ("event_id", "session_id", "event_type", "category", "action", "label", "value", "stream_data",
           "sandbox_id", "repo_url", "timestamp", "duration", "metadata", "context", "service_name",
           "service_version")


def _database(events: int) -> Path:
    path = CACHE_DIR / f"lookup-{events}.db"
    if not path.exists():
        from bench_lookup import build

        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        build(path, events)
    return path


def _ours(db: Path, fmt: str, out: Path) -> dict[str, Any]:
    from vibekit_telemetry.export.exports import export_events
    from vibekit_telemetry.store.sql import SQLStore

    store = SQLStore(str(db))
    store.initialize()
    started = time.perf_counter()
    result = export_events(store, fmt, output_path=str(out))
    seconds = time.perf_counter() - started
    store.shutdown()
    return {"seconds": seconds, "records": result.record_count, "bytes": result.file_size}


def _rows(db: Path) -> Any:
    import sqlite3

    conn = sqlite3.connect(str(db))
    conn.row_factory = None
    return conn, conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY timestamp, event_id")


def _peer_write_only(db: Path, fmt: str, out: Path) -> dict[str, Any]:
    conn, cursor = _rows(db)
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in cursor]
    conn.close()
    started = time.perf_counter()
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows)
        pq.write_table(table, out, compression="snappy")
    elif fmt == "msgspec":
        import msgspec

        encoder = msgspec.json.Encoder()
        with open(out, "wb") as f:
            for start in range(0, len(rows), 5000):
                f.write(encoder.encode_lines(rows[start:start + 5000]))
    else:
        import orjson

        with open(out, "wb") as f:
            for start in range(0, len(rows), 5000):
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows[start:start + 5000]))
    return {"seconds": time.perf_counter() - started, "records": len(rows), "bytes": out.stat().st_size}


def _peer_read_write(db: Path, fmt: str, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    conn, cursor = _rows(db)
    count = 0
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        while batch := cursor.fetchmany(50_000):
            table = pa.Table.from_pylist([dict(zip(COLUMNS, r, strict=True)) for r in batch])
            writer = writer or pq.ParquetWriter(out, table.schema, compression="snappy")
            writer.write_table(table)
            count += len(batch)
        if writer is not None:
            writer.close()
    else:
        import orjson

        with open(out, "wb") as f:
            while batch := cursor.fetchmany(5000):
                f.write(b"".join(orjson.dumps(dict(zip(COLUMNS, r, strict=True))) + b"\n" for r in batch))
                count += len(batch)
    conn.close()
    return {"seconds": time.perf_counter() - started, "records": count, "bytes": out.stat().st_size}


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss would carry the parent's peak across exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return peak_rss_mb()


def _child(kind: str, db: str, fmt: str, out: str) -> None:
    import resource

    run = {"ours": _ours, "peer_write_only": _peer_write_only, "peer_read_write": _peer_read_write}[kind]
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = run(Path(db), fmt, Path(out))
    after = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of the whole child (loading rows included for write-only peers): on a shared machine
    # wall time swings with the neighbours' load, CPU time much less.
    result["cpu_seconds"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _measure(kind: str, db: Path, fmt: str, workdir: Path) -> dict[str, Any]:
    out = workdir / f"{kind}.{fmt}"
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(db), fmt, str(out)], cwd=BENCH_DIR,
                          capture_output=True, text=True)
    if out.exists():
        out.unlink()
    if proc.returncode != 0:
        return {"error": proc.stderr[-1500:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median wall seconds, with the medians of CPU seconds and peak RSS beside it."""
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return runs[0]
    middle = sorted(ok, key=lambda r: r["seconds"])[len(ok) // 2]
    return {**middle, "runs": len(ok), "all_seconds": [round(r["seconds"], 2) for r in ok],
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in ok),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in ok)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="ndjson,parquet,json,csv")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of ours and the streaming peer (median)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return {}
    db = _database(args.events)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    results: dict[str, Any] = {"machine": machine(), "events": args.events, "repeat": args.repeat, "formats": {}}
    summary = [f"export of {args.events:,} events ({db.stat().st_size / 1e6:.0f} MB SQLite), "
               f"median of {args.repeat} interleaved rounds:"]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        workdir = Path(tmp)
        # Interleaved rounds (ours, then the peer, format by format): on a shared machine the
        # neighbours' load changes over minutes, and each side sees the same share of it.
        for _ in range(args.repeat):
            for fmt in formats:
                runs.setdefault((fmt, "ours"), []).append(_measure("ours", db, fmt, workdir))
                if fmt in ("ndjson", "parquet"):
                    runs.setdefault((fmt, "peer_read_write"), []).append(_measure("peer_read_write", db, fmt, workdir))
        for fmt in formats:
            entry: dict[str, Any] = {kind: _median(found) for (f, kind), found in runs.items() if f == fmt}
            if fmt in ("ndjson", "parquet"):
                # The library alone on rows already in memory (1-2 GB of dicts): once, for scale.
                entry["peer_write_only"] = _measure("peer_write_only", db, fmt, workdir)
                if fmt == "ndjson" and importlib.util.find_spec("msgspec") is not None:
                    entry["peer_msgspec_write_only"] = _measure("peer_write_only", db, "msgspec", workdir)
            ours = entry["ours"]
            nan = float("nan")
            line = f"  {fmt:8} ours {ours.get('seconds', nan):6.1f} s (cpu {ours.get('cpu_seconds', nan):.1f} s), " \
                   f"peak RSS {ours.get('peak_rss_mb', nan):4.0f} MB"
            for peer in ("peer_read_write", "peer_write_only", "peer_msgspec_write_only"):
                if peer in entry and "seconds" in entry[peer] and "seconds" in ours:
                    ratio = ours["seconds"] / entry[peer]["seconds"]
                    entry[f"ratio_{peer}"] = ratio
                    entry[f"cpu_ratio_{peer}"] = ours["cpu_seconds"] / entry[peer]["cpu_seconds"]
                    line += f"; {peer} {entry[peer]['seconds']:.1f} s (cpu {entry[peer]['cpu_seconds']:.1f} s, " \
                            f"{entry[peer]['peak_rss_mb']:.0f} MB), ratio {ratio:.2f} (cpu " \
                            f"{entry[f'cpu_ratio_{peer}']:.2f})"
            summary.append(line)
            results["formats"][fmt] = entry
    results["targets_met"] = {
        f"{fmt}_rss_le_150mb": entry["ours"].get("peak_rss_mb", 1e9) <= 150 for fmt, entry in results["formats"].items()
    } | {f"{fmt}_le_2x_streaming_library": entry.get("ratio_peer_read_write", 1e9) <= 2
         for fmt, entry in results["formats"].items() if fmt in ("ndjson", "parquet")}
    emit("export", results, summary)
    return results


if __name__ == "__main__":
    main()
