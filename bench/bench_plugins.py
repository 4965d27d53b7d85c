"""Per-event cost of an empty `before_track` plugin (issue 15; target <= 2 µs).

Batches of `--batch` events (the writer's batches) go through one step, the way Chain.run calls
it: the plugins step with one plugin whose before_track returns the event (its hook runs on the
plugin's own thread, one trip per batch: the hand-off is included), and, as the peer, a plain
processor step that returns the event, run inline on the calling thread (the cheapest chain step
there is, with no isolation). Also the whole default chain without plugins, for scale. Best of
`--rounds`, per event.

    python bench/bench_plugins.py
    python bench/bench_plugins.py --events 20000 --batch 100
"""

from __future__ import annotations

import argparse
import copy
from time import perf_counter_ns
from typing import Any

from _util import emit, machine, ratio


def _events(n: int) -> list[Any]:
    from vibekit_telemetry.events import TelemetryEvent

    return [TelemetryEvent("stream", "claude", session_id=f"s{i // 20}", action="code", stream_data="x" * 80,
                           metadata={"tokens": i}, timestamp=1_700_000_000_000 + i) for i in range(n)]


class _Empty:
    name = "empty"

    def before_track(self, event: Any) -> Any:
        return event


class _Inline:
    name = "inline"

    def process(self, event: Any) -> Any:
        return event


def main() -> None:
    """Run the benchmark and print its JSON line and summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from vibekit_telemetry.config import TelemetryConfig
    from vibekit_telemetry.plugins import PluginManager
    from vibekit_telemetry.processing import build_chain

    config = TelemetryConfig(storage=[{"type": "memory"}])
    chain = build_chain(config)
    manager = PluginManager()
    manager.add(_Empty())
    plugin_step = manager.track_step
    inline = _Inline()
    events = _events(args.events)
    batches = [events[index:index + args.batch] for index in range(0, len(events), args.batch)]
    best: dict[str, float] = {}

    def timed(name: str, run: Any) -> None:
        started = perf_counter_ns()
        for batch in batches:
            run(batch)
        best[name] = min(best.get(name, float("inf")), (perf_counter_ns() - started) / len(events) / 1000)

    def inline_step(batch: list[Any]) -> None:
        process = inline.process
        for event in batch:  # what Chain.run does for a plain step
            process(event)

    for _ in range(args.rounds):
        timed("plugin_step", plugin_step.process_batch)
        timed("inline_step", inline_step)
    whole = copy.deepcopy(events)
    started = perf_counter_ns()
    for index in range(0, len(whole), args.batch):
        chain.run(whole[index:index + args.batch])
    best["default_chain"] = (perf_counter_ns() - started) / len(whole) / 1000
    manager.shutdown()
    results = {"machine": machine(), "events": args.events, "batch": args.batch, "us_per_event": best,
               "plugin_over_inline_step": ratio(best["plugin_step"], best["inline_step"]), "target_us": 2.0}
    summary = [f"{name:14s} {us:8.3f} µs/event" for name, us in best.items()]
    summary.append(f"an empty before_track plugin costs {best['plugin_step']:.3f} µs/event (target <= 2); "
                   f"an inline no-op step {best['inline_step']:.3f}")
    emit("plugins", results, summary)


if __name__ == "__main__":
    main()
