"""Realistic telemetry series with labelled anomalies, and event-level precision / recall / F1 scoring."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

MINUTE_MS = 60_000


@dataclass(slots=True)
class LabelledSeries:
    """A generated series and the [start, end] time windows (epoch ms) of its injected anomalies."""

    timestamps: list[int]
    values: list[float]
    labels: list[tuple[int, int, str]] = field(default_factory=list)


def generate_series(*, days: float = 3, step_ms: int = MINUTE_MS, base: float = 100.0, seed: int = 0,
                    start_ms: int = 1_700_006_400_000, anomalies: bool = True) -> LabelledSeries:
    """Return a series with trend, daily cycle, noise, and (labelled) spikes, level shifts and drifts."""
    rng = random.Random(seed)
    n = int(days * 86_400_000 // step_ms)
    noise = base * 0.04
    ts = [start_ms + i * step_ms for i in range(n)]
    values = []
    for i, t in enumerate(ts):
        day_phase = 2 * math.pi * (t % 86_400_000) / 86_400_000
        trend = base * 0.1 * i * step_ms / 86_400_000  # +10 % of the base per day
        cycle = base * 0.3 * math.sin(day_phase) + base * 0.08 * math.sin(2 * day_phase)
        # Mildly heavy-tailed noise, as real latencies and counts are.
        jitter = rng.gauss(0, noise) * (1.6 if rng.random() < 0.05 else 1.0)
        values.append(base + trend + cycle + jitter)
    out = LabelledSeries(ts, values)
    if not anomalies:
        return out
    # Anomalies only after the first day (the detector needs history, as any would), spaced apart.
    slots = list(range(int(n * 0.34), n - 200, 150))
    rng.shuffle(slots)
    per_kind = max(1, int(days * 3))
    kinds = ["spike"] * per_kind + ["dip"] * (per_kind // 2) + ["shift"] * (per_kind // 2) + \
        ["drift"] * (per_kind // 2)
    for kind, at in zip(kinds, sorted(slots[: len(kinds)]), strict=False):
        sign = rng.choice((-1, 1))
        if kind in ("spike", "dip"):
            width = rng.randint(1, 3)
            size = noise * rng.uniform(8, 15) * (1 if kind == "spike" else -1)
            for j in range(at, at + width):
                values[j] += size
            out.labels.append((ts[at], ts[at + width - 1], kind))
        elif kind == "shift":
            width = rng.randint(40, 90)
            size = sign * noise * rng.uniform(5, 9)
            for j in range(at, at + width):
                values[j] += size
            out.labels.append((ts[at], ts[at + width - 1], kind))
        else:
            ramp, hold = rng.randint(40, 70), rng.randint(20, 40)
            size = sign * noise * rng.uniform(6, 10)
            for j in range(at, at + ramp + hold):
                values[j] += size * min(1.0, (j - at) / ramp)
            out.labels.append((ts[at], ts[at + ramp + hold - 1], kind))
    return out


def score(detected: Sequence[int], labels: Sequence[tuple[int, int, str]], *,
          tolerance_ms: int = 5 * MINUTE_MS) -> dict[str, float]:
    """Event-level scores: detections within tolerance of one another form one alarm.

    An alarm is a true positive when it overlaps a labelled window (± tolerance); a label is recalled
    when any alarm overlaps it. Precision = true alarms / alarms, recall = recalled labels / labels.
    """
    alarms: list[list[int]] = []
    for t in sorted(detected):
        if alarms and t - alarms[-1][1] <= tolerance_ms:
            alarms[-1][1] = t
        else:
            alarms.append([t, t])

    def overlaps(a: list[int], lab: tuple[int, int, str]) -> bool:
        """Whether an alarm's span meets a label's window, with the tolerance on both sides."""
        return a[0] <= lab[1] + tolerance_ms and a[1] >= lab[0] - tolerance_ms
    true_alarms = sum(any(overlaps(a, lab) for lab in labels) for a in alarms)
    recalled = sum(any(overlaps(a, lab) for a in alarms) for lab in labels)
    precision = true_alarms / len(alarms) if alarms else 1.0
    recall = recalled / len(labels) if labels else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "alarms": float(len(alarms)),
            "labels": float(len(labels))}
