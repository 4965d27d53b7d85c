"""Per-event cost of an empty `before_track` plugin (issue 15; target <= 2 µs).

Batches of `--batch` events (the writer's batches) go through one step, the way Chain.run calls
it: the plugins step with one plugin whose before_track returns the event (its hook runs on the
plugin's own thread, one trip per batch: the hand-off is included, and so is the per-event lock
that lets a timed-out call be cut off), and, as the peer, a plain processor step that returns the
event, run inline on the calling thread (the cheapest chain step there is, with no isolation).
`copy_every_event` is what handing the hook a copy of every event would add (plugins/base.detached):
why the runner copies only the event a timed-out call still holds. Also the whole default chain
without plugins, for scale. Median of `--rounds` (interleaved), per event.

    python bench/bench_plugins.py
    python bench/bench_plugins.py --events 20000 --batch 100
"""

from __future__ import annotations

import argparse
import copy
import statistics
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
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    from vibekit_telemetry.config import TelemetryConfig
    from vibekit_telemetry.plugins import PluginManager
    from vibekit_telemetry.plugins.base import detached
    from vibekit_telemetry.processing import build_chain

    config = TelemetryConfig(storage=[{"type": "memory"}])
    chain = build_chain(config)
    manager = PluginManager()
    manager.add(_Empty())
    plugin_step = manager.track_step
    inline = _Inline()
    events = _events(args.events)
    batches = [events[index:index + args.batch] for index in range(0, len(events), args.batch)]
    rounds: dict[str, list[float]] = {}

    def timed(name: str, run: Any) -> None:
        started = perf_counter_ns()
        for batch in batches:
            run(batch)
        rounds.setdefault(name, []).append((perf_counter_ns() - started) / len(events) / 1000)

    def inline_step(batch: list[Any]) -> None:
        process = inline.process
        for event in batch:  # what Chain.run does for a plain step
            process(event)

    def copy_every_event(batch: list[Any]) -> None:
        for event in batch:
            detached(event)

    for _ in range(args.rounds):
        timed("plugin_step", plugin_step.process_batch)
        timed("inline_step", inline_step)
        timed("copy_every_event", copy_every_event)
    whole = copy.deepcopy(events)
    started = perf_counter_ns()
    for index in range(0, len(whole), args.batch):
        chain.run(whole[index:index + args.batch])
    chain_us = (perf_counter_ns() - started) / len(whole) / 1000  # one round: the chain changes the events
    manager.shutdown()
    median = {name: statistics.median(values) for name, values in rounds.items()}
    median["default_chain"] = chain_us
    results = {"machine": machine(), "events": args.events, "batch": args.batch, "rounds": args.rounds,
               "us_per_event_median": median, "us_per_event_rounds": rounds,
               "plugin_over_inline_step": ratio(median["plugin_step"], median["inline_step"]), "target_us": 2.0}
    summary = [f"{name:16s} {us:8.3f} µs/event (median)" for name, us in median.items()]
    summary.append(f"an empty before_track plugin costs {median['plugin_step']:.3f} µs/event (target <= 2); "
                   f"an inline no-op step {median['inline_step']:.3f}")
    emit("plugins", results, summary)


if __name__ == "__main__":
    main()
