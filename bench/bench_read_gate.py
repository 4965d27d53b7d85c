"""What the reader gate (store/sql/fork.py) costs a read: get_session in a loop, gated and not.

One SQLite store, one session of 51 events; get_session(id) called `--calls` times per round, CPU time
per call (time.process_time, so other load on the machine weighs less than wall time would). Rounds
alternate (which goes first too) between the store's engine as it is (every Connection passes the gate)
and the same engine with SQLAlchemy's plain Connection (no gate), so both see the same file, cache and
machine load.
Also the gate alone: enter()+leave() per call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Connection

from _util import emit, machine
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.store.sql import SQLStore
from vibekit_telemetry.store.sql.fork import READS, GatedConnection


def _round(store: SQLStore, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        store.get_session("s")
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    """Run the rounds; print the JSON line and a summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of each kind, alternated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLStore(Path(tmp) / "gate.db")
        store.initialize()
        store.store_batch([TelemetryEvent("start", "claude", session_id="s", timestamp=1000)]
                          + [TelemetryEvent("stream", "claude", session_id="s", stream_data="x", timestamp=1001 + i)
                             for i in range(50)])
        engine = store.engine
        gated: list[float] = []
        plain: list[float] = []
        _round(store, args.calls)  # warm the pool and the page cache
        for i in range(args.rounds):
            kinds = [(GatedConnection, gated), (Connection, plain)]
            for cls, rounds in kinds if i % 2 else kinds[::-1]:  # alternate which goes first
                engine._connection_cls = cls
                rounds.append(_round(store, args.calls))
        engine._connection_cls = GatedConnection
        store.shutdown()
    n = 200_000
    start = time.process_time()
    for _ in range(n):
        READS.leave(READS.enter())
    gate_us = (time.process_time() - start) / n * 1e6
    results = {"machine": machine(), "calls": args.calls, "rounds": args.rounds,
               "gated_us": statistics.median(gated), "plain_us": statistics.median(plain),
               "gated_rounds": gated, "plain_rounds": plain, "enter_leave_us": gate_us}
    diff = results["gated_us"] - results["plain_us"]
    emit("read_gate", results, [
        f"get_session, CPU µs per call (median of {args.rounds} rounds of {args.calls}):",
        f"  gated {results['gated_us']:.1f}  plain {results['plain_us']:.1f}  difference {diff:+.1f} "
        f"({diff / results['plain_us'] * 100:+.1f} %)",
        f"  the gate alone, enter()+leave(): {gate_us:.2f} µs",
    ])


if __name__ == "__main__":
    main()
