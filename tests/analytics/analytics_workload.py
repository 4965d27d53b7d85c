"""A demo workload for the analytics tests: two agents over the past hours, with optional injected faults."""

from __future__ import annotations

import random
import time
from typing import Any

MIN = 60_000


def now_minute() -> int:
    """The start of the current minute, epoch ms."""
    return int(time.time() * 1000) // MIN * MIN


def workload(end: int, minutes: int = 180, *, faults_from: int | None = None, seed: int = 1,
             sessions_per_minute: int = 2) -> list[dict[str, Any]]:
    """Events for `minutes` minutes before `end`: per agent and minute, sessions of start, 3 chunks, end.

    From `faults_from` on, codex's sessions all fail (3 errors each) and claude's chunks take 10x longer.
    """
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for m in range(minutes):
        at = end - (minutes - m) * MIN
        faulty = faults_from is not None and at >= faults_from
        for agent in ("claude", "codex"):
            for k in range(sessions_per_minute):
                sid = f"{agent}-{m}-{k}"
                t = at + k * 20_000 + rng.randint(0, 5_000)
                out.append({"event_type": "start", "session_id": sid, "category": agent, "action": "code",
                            "timestamp": t})
                slow = faulty and agent == "claude"
                for c in range(3):
                    duration = rng.gauss(200, 15) * (10 if slow else 1)
                    out.append({"event_type": "stream", "session_id": sid, "category": agent,
                                "timestamp": t + 500 + c * 200, "duration": round(duration, 1),
                                "stream_data": "chunk"})
                if faulty and agent == "codex":
                    for e in range(3):
                        out.append({"event_type": "error", "session_id": sid, "category": agent,
                                    "timestamp": t + 1200 + e, "label": "rate limited"})
                out.append({"event_type": "end", "session_id": sid, "category": agent, "timestamp": t + 2_000,
                            "duration": 2_000.0})
    return out
