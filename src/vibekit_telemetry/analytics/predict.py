"""Forecasts N steps ahead: Holt's linear smoothing on the deseasonalised series, with intervals and a backtest."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .detect import DAY_MS, season_bin, seasonal_profile

_Z95 = 1.96


@dataclass(slots=True)
class Forecast:
    """Predicted values with 95 % intervals, and the method's error on the series' own recent past."""

    metric: str
    timestamps: list[int]
    values: list[float]
    lower: list[float]
    upper: list[float]
    backtest: dict[str, float | None] = field(default_factory=dict)
    method: str = "holt-linear + daily profile"

    def to_dict(self) -> dict[str, Any]:
        """Return the forecast as a plain dict."""
        return asdict(self)


def _slope(ys: Sequence[float]) -> float:
    """The least-squares slope of ys against 0, 1, 2, ... (0 for fewer than two points)."""
    n = len(ys)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(ys) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(ys))
    return covariance / (n * (n * n - 1) / 12)


def _holt(ys: Sequence[float], alpha: float, beta: float) -> tuple[float, float, list[float]]:
    """Fit level and trend; return them and the one-step-ahead errors."""
    # The trend starts from the least-squares slope of the whole series, not from its first step: with
    # a small beta the first difference of a noisy or saw-tooth series would linger for the whole fit
    # and be extrapolated (9, 12, 15, 18, 9, 12 ... forecast climbing to 144).
    level, trend = ys[0], _slope(ys)
    errors: list[float] = []
    for y in ys[1:]:
        predicted = level + trend
        errors.append(y - predicted)
        new_level = alpha * y + (1 - alpha) * predicted
        trend = beta * (new_level - level) + (1 - beta) * trend
        level = new_level
    return level, trend, errors


def _fit(ys: Sequence[float]) -> tuple[float, float, float, list[float]]:
    """Pick alpha from a small grid by one-step error (beta small: trends are slow)."""
    best: tuple[float, float, float, list[float]] | None = None
    best_sse = math.inf
    for alpha in (0.05, 0.1, 0.2, 0.4):
        level, trend, errors = _holt(ys, alpha, 0.01)
        sse = sum(e * e for e in errors[len(errors) // 4:])
        if sse < best_sse:
            best_sse, best = sse, (alpha, level, trend, errors)
    assert best is not None
    return best


def forecast(timestamps: Sequence[int], values: Sequence[float], steps: int, *, metric: str = "value",
             step_ms: int | None = None, period_ms: int = DAY_MS, backtest: bool = True) -> Forecast:
    """Forecast `steps` points after the series' end, each with a 95 % prediction interval."""
    if len(timestamps) != len(values):
        raise ValueError("values: expected as many values as timestamps")
    if len(values) < 3:
        raise ValueError(f"values: expected at least 3 points to forecast, got {len(values)}")
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    ts = [int(t) for t in timestamps]
    step = step_ms or max(1, sorted(b - a for a, b in itertools.pairwise(ts))[(len(ts) - 1) // 2])
    profile = seasonal_profile(ts, values, period_ms)
    season = [profile[season_bin(t, period_ms)] if profile else 0.0 for t in ts]
    ys = [v - s for v, s in zip(values, season, strict=True)]
    alpha, level, trend, errors = _fit(ys)
    tail = errors[len(errors) // 4:] or errors
    sigma = math.sqrt(sum(e * e for e in tail) / len(tail)) if tail else 0.0
    # Counts, rates and durations cannot go negative: neither can their forecasts.
    floor = 0.0 if min(values) >= 0 else -math.inf
    out = Forecast(metric, [], [], [], [])
    for h in range(1, steps + 1):
        t = ts[-1] + h * step
        value = level + h * trend + (profile[season_bin(t, period_ms)] if profile else 0.0)
        spread = _Z95 * sigma * math.sqrt(1 + (h - 1) * alpha * alpha)
        out.timestamps.append(t)
        out.values.append(round(max(floor, value), 6))
        out.lower.append(round(max(floor, value - spread), 6))
        out.upper.append(round(max(floor, value + spread), 6))
    if backtest:
        out.backtest = backtest_error(ts, list(values), steps, step, period_ms)
    return out


def backtest_error(ts: Sequence[int], values: Sequence[float], steps: int, step_ms: int,
                   period_ms: int = DAY_MS) -> dict[str, float | None]:
    """Forecast the last `steps` points from those before them: MAE, MAPE and interval coverage."""
    horizon = min(steps, len(values) // 3)
    if horizon < 1 or len(values) - horizon < 3:
        return {"mae": None, "mape": None, "coverage": None, "points": 0}
    past = forecast(ts[:-horizon], values[:-horizon], horizon, step_ms=step_ms, period_ms=period_ms,
                    backtest=False)
    actual = values[-horizon:]
    errors = [abs(a - p) for a, p in zip(actual, past.values, strict=True)]
    relative = [e / abs(a) for e, a in zip(errors, actual, strict=True) if a]
    inside = sum(lo <= a <= hi for a, lo, hi in zip(actual, past.lower, past.upper, strict=True))
    return {"mae": round(sum(errors) / horizon, 6),
            "mape": round(100 * sum(relative) / len(relative), 3) if relative else None,
            "coverage": round(inside / horizon, 3), "points": horizon}
