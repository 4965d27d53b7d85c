"""Evaluation: anomaly detection over the rollup series, the scheduler's job (newest points, de-duplicated)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..errors import ValidationError
from ..store.base import RollupPoint
from .alerts import Alert
from .detect import THRESHOLDS, Anomaly, detect_anomalies
from .routing import AlertRouting
from .series import build_all_series, metric_name, rollup_points
from .window import DAY, HOUR, MINUTE

ANOMALY_MEMORY: Final = 500
# The smallest move worth an alarm per series (absolute, relative to expected), beside the z-score:
# 3 events instead of 0 on a quiet counter is statistically odd and practically nothing.
MIN_CHANGE: Final[dict[str, tuple[float, float]]] = {
    "throughput": (10.0, 0.5), "errors": (5.0, 0.5), "error_rate": (5.0, 0.0),
    "response_time": (0.0, 0.2), "session_duration": (0.0, 0.2),
}
PERIODS: Final = {"minute": MINUTE, "hour": HOUR, "day": DAY}
# Minutes older than this are read once and kept between evaluations (rows rarely arrive later);
# the whole history is read again every REFRESH_MS so late rows still reach the baseline.
SETTLE_MS: Final = 10 * MINUTE
REFRESH_MS: Final = HOUR


def read_series(store: object, names: Sequence[str], since: int, until: int, cats: Sequence[str],
                period: str = "minute") -> dict[str, tuple[list[int], list[float]]]:
    """Several series from one read of the rollups, built in one pass over the points."""
    size = PERIODS.get(period)
    if size is None:
        raise ValidationError("period", "minute, hour or day", period)
    points = rollup_points(store, period, since // size * size, until, cats)
    return build_all_series(points, [metric_name(n) for n in names], size, since, until)


def detect(name: str, ts: list[int], vs: list[float], sensitivity: str, since: int) -> list[Anomaly]:
    """Anomalies of one series from `since` on, with the series' minimum worthwhile change."""
    absolute, relative = MIN_CHANGE.get(name, (0.0, 0.0))
    return detect_anomalies(ts, vs, sensitivity, metric=name, since=since, min_change=absolute,
                            min_relative_change=relative)


def complete(name: str, ts: list[int], vs: list[float], now: int) -> tuple[list[int], list[float]]:
    """Drop the current minute's partial count (it looks like a dip); rates and means keep it."""
    if name in ("throughput", "errors") and ts and ts[-1] > now - MINUTE:
        return ts[:-1], vs[:-1]
    return ts, vs


def check_sensitivity(level: str, field: str = "sensitivity") -> str:
    """Return the sensitivity, or raise naming the field."""
    if level not in THRESHOLDS:
        raise ValidationError(field, f"one of {', '.join(THRESHOLDS)}", level)
    return level


class Evaluator:
    """The scheduled evaluation: scores the newest points once each, fires anomaly alerts, checks thresholds."""

    def __init__(self, store: Callable[[], object], routing: AlertRouting, emit: Callable[[str, Any], None], *,
                 monitored: list[str], sensitivity: str, history_ms: int, cooldown_s: float) -> None:
        self._store = store
        self.routing = routing
        self._emit = emit
        self.monitored = monitored
        self.sensitivity = sensitivity
        self.history_ms = history_ms
        self.cooldown_s = cooldown_s
        self.anomalies: deque[Anomaly] = deque(maxlen=ANOMALY_MEMORY)
        # Anomalies detected in this process by (metric, severity): the Prometheus counter.
        self.detected: dict[tuple[str, str], int] = {}
        self.evaluations = 0
        self.last_evaluation: dict[str, Any] | None = None
        self._evaluated_until: int | None = None
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        # Settled minute points [history start, _settled_until) kept between runs, and when read in full.
        self._settled: list[RollupPoint] = []
        self._settled_until: int | None = None
        self._settled_read_at = 0

    def _history(self, now: int) -> dict[str, tuple[list[int], list[float]]]:
        """The watched series over history_ms: settled minutes from the cache, the newest read again."""
        store = self._store()
        since = (now - self.history_ms) // MINUTE * MINUTE
        cut = (now - SETTLE_MS) // MINUTE * MINUTE
        cached = self._settled_until
        if cached is None or cached < since or cut < cached or now - self._settled_read_at >= REFRESH_MS:
            self._settled = rollup_points(store, "minute", since, cut - 1) if cut > since else []
            self._settled_read_at = now
        elif cut > cached:
            self._settled += rollup_points(store, "minute", cached, cut - 1)
        self._settled_until = max(cut, since)
        if self._settled and self._settled[0].bucket_start < since:
            self._settled = [p for p in self._settled if p.bucket_start >= since]
        points = self._settled + rollup_points(store, "minute", self._settled_until, now)
        return build_all_series(points, self.monitored, MINUTE, now - self.history_ms, now)

    def run(self, now: int) -> dict[str, Any]:
        """Run detection on the newest data and check every threshold."""
        with self._lock:
            # Score the points since the last run (at least the last 3 minutes: late rows, partial buckets).
            start = min(self._evaluated_until or now, now - 3 * MINUTE)
            fresh: list[Anomaly] = []
            for name, (ts, vs) in self._history(now).items():
                ts, vs = complete(name, ts, vs, now)
                for anomaly in detect(name, ts, vs, self.sensitivity, start):
                    key = (name, anomaly.timestamp)
                    if key not in self._seen:
                        self._seen.add(key)
                        fresh.append(anomaly)
            if len(self._seen) > 10 * ANOMALY_MEMORY:
                self._seen = {(a.metric, a.timestamp) for a in self.anomalies}
            fired: list[Alert] = []
            for anomaly in fresh:
                self.anomalies.append(anomaly)
                counted = (anomaly.metric, anomaly.severity)
                self.detected[counted] = self.detected.get(counted, 0) + 1
                self._emit("anomaly", anomaly)
                alert = self.routing.manager.fire(
                    Alert(f"anomaly:{anomaly.metric}", "anomaly", anomaly.metric, anomaly.severity,
                          anomaly.description, anomaly.observed, details=anomaly.to_dict()), self.cooldown_s)
                if alert is not None:
                    fired.append(alert)
            fired.extend(self.routing.check_thresholds(now))
            self._evaluated_until = now
            self.evaluations += 1
            self.last_evaluation = {"at": now, "anomalies": len(fresh), "alerts": len(fired)}
            return {"anomalies": [a.to_dict() for a in fresh], "alerts": [a.to_dict() for a in fired]}

    def recent(self, since: int) -> list[dict[str, Any]]:
        """Anomalies the scheduled evaluation found from `since` on."""
        return [a.to_dict() for a in list(self.anomalies) if a.timestamp >= since]
