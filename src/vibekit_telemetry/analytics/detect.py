"""Anomaly detection over any series: robust z-scores against a seasonal, trend-following baseline.

The method (documented in docs/analytics.md):
1. Daily seasonality: when the series covers at least two periods, a profile per time-of-day bin is the
   median, over the periods, of each value minus its period's median; it is subtracted from the values.
2. Spikes: each deseasonalised value is compared with the median of the `window` values before it,
   scaled by their MAD (median absolute deviation, ×1.4826 ≈ σ for normal noise).
3. Shifts and drifts: the median of the last `recent` values is compared with the median of the
   `long_window` values before them, scaled by the same MAD divided by √recent (a median of many
   points is that much steadier), so a slow drift is caught once it has moved the level.
Trailing windows only: the verdict on a point never depends on later points, so a live evaluation
gives the same answer as a batch one. Medians and MADs make the baseline robust to the anomalies it
must find. Irregular spacing and gaps are fine: windows count points, seasonal bins use timestamps.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any, Final, Literal

Sensitivity = Literal["low", "medium", "high"]
# Robust z-score a point must exceed, per sensitivity (tuned on analytics/synthetic.py, see docs).
THRESHOLDS: Final[dict[str, float]] = {"low": 7.0, "medium": 5.0, "high": 3.5}
DAY_MS: Final = 86_400_000
_BINS_PER_PERIOD: Final = 24
_MIN_HISTORY: Final = 20
_MAD_TO_SIGMA: Final = 1.4826


@dataclass(slots=True)
class Anomaly:
    """One anomalous point: when, what was seen and expected, how bad, how sure, in words."""

    timestamp: int
    observed: float
    expected: float
    score: float
    severity: str
    confidence: float
    kind: str  # spike | dip | shift
    metric: str = "value"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the anomaly as a plain dict."""
        return asdict(self)


def _check(timestamps: Sequence[int], values: Sequence[float], sensitivity: str) -> None:
    if sensitivity not in THRESHOLDS:
        raise ValueError(f"sensitivity: expected one of {', '.join(THRESHOLDS)}, got {sensitivity!r}")
    if len(timestamps) != len(values):
        raise ValueError(f"values: expected as many values as timestamps ({len(timestamps)}), got {len(values)}")
    for i, (t, v) in enumerate(zip(timestamps, values, strict=True)):
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ValueError(f"timestamps[{i}]: expected epoch milliseconds, got {t!r}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"values[{i}]: expected a finite number, got {v!r}")


def seasonal_profile(timestamps: Sequence[int], values: Sequence[float],
                     period_ms: int = DAY_MS) -> list[float] | None:
    """Return the median offset per time-of-day bin, or None when the series covers under two periods."""
    if not timestamps or timestamps[-1] - timestamps[0] < 2 * period_ms:
        return None
    by_period: dict[int, list[float]] = {}
    for t, v in zip(timestamps, values, strict=True):
        by_period.setdefault(int(t) // period_ms, []).append(v)
    level = {p: median(vs) for p, vs in by_period.items()}
    offsets: list[list[float]] = [[] for _ in range(_BINS_PER_PERIOD)]
    for t, v in zip(timestamps, values, strict=True):
        offsets[season_bin(int(t), period_ms)].append(v - _level_at(level, int(t), period_ms))
    return [median(o) if o else 0.0 for o in offsets]


def _level_at(level: dict[int, float], t: int, period_ms: int) -> float:
    """The periods' medians joined linearly between period midpoints: with a trend, a step per period
    would leave a sawtooth in the profile (and a false shift at every midnight)."""
    p = t // period_ms
    centre = p * period_ms + period_ms / 2
    other = p - 1 if t < centre else p + 1
    if other not in level:
        return level[p]
    weight = abs(t - centre) / period_ms
    return level[p] * (1 - weight) + level[other] * weight


def season_bin(timestamp: int, period_ms: int = DAY_MS) -> int:
    """Return the time-of-day bin of a timestamp."""
    return int(timestamp % period_ms * _BINS_PER_PERIOD // period_ms)


class _Window:
    """The last n values, kept sorted too, for running medians."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[float] = []
        self.order: list[float] = []

    def push(self, value: float) -> None:
        """Add the newest value, dropping the oldest beyond the window."""
        self.items.append(value)
        bisect.insort(self.order, value)
        if len(self.items) > self.size:
            old = self.items.pop(0)
            del self.order[bisect.bisect_left(self.order, old)]

    def median(self) -> float:
        """The window's median (it is never asked while empty)."""
        n = len(self.order)
        mid = n // 2
        return self.order[mid] if n % 2 else (self.order[mid - 1] + self.order[mid]) / 2


def detect_anomalies(timestamps: Sequence[int], values: Sequence[float], sensitivity: str = "medium", *,
                     metric: str = "value", window: int = 60, long_window: int = 240, recent: int = 10,
                     period_ms: int = DAY_MS, since: int | None = None, min_change: float = 0.0,
                     min_relative_change: float = 0.0) -> list[Anomaly]:
    """Return the anomalous points of a series (epoch-ms timestamps, floats; any spacing), oldest first.

    `since` scores only points at or after it (earlier ones still feed the baseline): live evaluation.
    `min_change` / `min_relative_change`: a point must also differ from the expected value by at least
    this much (absolute / fraction of expected), so a statistically odd but tiny move (2 events
    instead of 0 on a quiet counter) is not an alarm.
    """
    _check(timestamps, values, sensitivity)
    if window < 5 or long_window < window or recent < 1:
        raise ValueError("window: expected window >= 5, long_window >= window and recent >= 1")
    pairs = sorted(zip((int(t) for t in timestamps), (float(v) for v in values), strict=True))
    ts = [p[0] for p in pairs]
    raw = [p[1] for p in pairs]
    profile = seasonal_profile(ts, raw, period_ms)
    seasonal = [profile[season_bin(t, period_ms)] if profile else 0.0 for t in ts]
    ys = [v - s for v, s in zip(raw, seasonal, strict=True)]
    threshold = THRESHOLDS[sensitivity]
    short, long_, last = _Window(window), _Window(long_window), _Window(recent)
    # The long baseline ends where the recent run starts, so a shift is not averaged into both.
    delayed: list[float] = []
    out: list[Anomaly] = []
    long_scale: float | None = None
    for i, y in enumerate(ys):
        if len(short.items) >= _MIN_HISTORY and (since is None or ts[i] >= since):
            base = short.median()
            scale = _scale(short, base)
            z = (y - base) / scale
            level_z = 0.0
            level_base = base
            if len(long_.items) >= max(_MIN_HISTORY, recent * 2):
                last_with = sorted([*last.items, y][-recent:])
                level_base = long_.median()
                if long_scale is None or i % recent == 0:
                    long_scale = _scale(long_, level_base)
                level_scale = long_scale / math.sqrt(len(last_with))
                level_z = (last_with[len(last_with) // 2] - level_base) / level_scale
                # Only a point on the shifted side counts: the level test names points, not runs.
                if (level_z > 0) != (y > level_base):
                    level_z = 0.0
            if abs(z) >= threshold or abs(level_z) >= threshold * 1.6:
                shifted = abs(z) < threshold
                score = level_z / 1.6 if shifted else z
                expected = (level_base if shifted else base) + seasonal[i]
                if abs(raw[i] - expected) >= max(min_change, min_relative_change * abs(expected)):
                    out.append(_anomaly(ts[i], raw[i], expected, score, threshold, metric,
                                        "shift" if shifted else ("spike" if z > 0 else "dip")))
        short.push(y)
        last.push(y)
        delayed.append(y)
        if len(delayed) > recent:
            long_.push(delayed.pop(0))
    return out


def _scale(window: _Window, center: float) -> float:
    deviations = sorted(abs(v - center) for v in window.items)
    mad = deviations[len(deviations) // 2] * _MAD_TO_SIGMA
    # Never zero (a flat series): a floor relative to the level keeps a constant series quiet.
    return max(mad, 1e-3 * max(1.0, abs(center)))


def _anomaly(ts: int, observed: float, expected: float, score: float, threshold: float, metric: str,
             kind: str) -> Anomaly:
    strength = abs(score) / threshold
    severity = "critical" if strength >= 2 else "warning"
    confidence = round(min(0.99, 1 - 0.5 / strength), 3)
    direction = "above" if observed > expected else "below"
    # A near-flat baseline makes the ratio huge (thousands) and no more telling than "over 100".
    spread = f"{abs(score):.1f}× the usual spread" if abs(score) < 100 else "over 100× the usual spread"
    description = f"{metric} {_fmt(observed)} is {direction} the expected {_fmt(expected)} ({spread}, {kind})"
    return Anomaly(ts, observed, round(expected, 6), round(score, 3), severity, confidence, kind, metric,
                   description)


def _fmt(value: float) -> str:
    return f"{value:.4g}"
