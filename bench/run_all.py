"""Run every benchmark in sequence and write bench/results/latest.json.

Defaults finish within about ten minutes on a 2-core machine once the lookup databases are cached
(the first 10M-event build alone takes several minutes; pass --lookup-sizes 1000000 to skip it).

    python bench/run_all.py                          # everything, default sizes
    python bench/run_all.py --events 200000 --lookup-sizes 1000000 --rounds 5
    python bench/run_all.py --only track,chain,durable --sessions 200 --runs 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _util import BENCH_DIR, RESULTS_DIR, machine


def _run(script: str, args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH_DIR / script), *args]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH_DIR)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "stderr": proc.stderr[-2000:]}
    lines = proc.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[0])
    for line in lines[1:]:
        print(line)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="bench_track rounds")
    parser.add_argument("--calls", type=int, default=20_000, help="bench_track calls per round")
    parser.add_argument("--events", type=int, default=1_000_000, help="bench_ingest events")
    parser.add_argument("--lookup-sizes", default="1000000,10000000", help="bench_lookup database sizes")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=1000,
                        help="bench_chain_ingest / bench_durable_http sessions (of 100 events)")
    parser.add_argument("--runs", type=int, default=3, help="bench_chain_ingest / bench_durable_http repeats")
    parser.add_argument("--only", default="track,chain,durable,ingest,lookup", help="comma-separated subset")
    parser.add_argument("--out", default=str(RESULTS_DIR / "latest.json"))
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",")}
    results: dict[str, Any] = {"machine": machine(), "benchmarks": {}}
    if "track" in only:
        results["benchmarks"]["track"] = _run("bench_track.py", ["--rounds", str(args.rounds),
                                                                 "--calls", str(args.calls)])
    size = ["--sessions", str(args.sessions), "--runs", str(args.runs)]
    if "chain" in only:
        results["benchmarks"]["chain_ingest"] = _run("bench_chain_ingest.py", size)
    if "durable" in only:
        results["benchmarks"]["durable_http"] = _run("bench_durable_http.py", size)
    if "ingest" in only:
        results["benchmarks"]["ingest"] = _run("bench_ingest.py", ["--events", str(args.events)])
    if "lookup" in only:
        results["benchmarks"]["lookup"] = _run("bench_lookup.py", ["--sizes", args.lookup_sizes,
                                                                   "--lookups", str(args.lookups)])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
