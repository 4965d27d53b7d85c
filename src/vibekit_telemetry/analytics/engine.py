"""The analytics engine: metrics and insights from rollups and live sketches, scheduled evaluation, alerts."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from ..errors import ValidationError
from ..query import QueryFilter, SessionFilter, StatsFilter
from ..store.base import Auditable, EventIterable, QueryableStore, RollupPoint
from ..timeparse import duration_ms
from .alerts import Alert, AlertManager, AlertRule, WebhookChannel, make_rule
from .detect import THRESHOLDS, Anomaly, detect_anomalies
from .live import METRIC_TYPES, LiveMetrics, MetricDefinition
from .predict import forecast
from .pricing import Pricing
from .series import SERIES_METRICS, build_series, metric_name, rollup_points

logger = logging.getLogger("vibekit_telemetry")

MINUTE: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000
# Live (bus) metrics thresholds can watch besides the rollup series.
LIVE_METRICS: Final = ("cost", "tokens")
_ANOMALY_MEMORY: Final = 500
# The smallest move worth an alarm per series (absolute, relative to expected), beside the z-score:
# 3 events instead of 0 on a quiet counter is statistically odd and practically nothing.
MIN_CHANGE: Final[dict[str, tuple[float, float]]] = {
    "throughput": (10.0, 0.5), "errors": (5.0, 0.5), "error_rate": (5.0, 0.0),
    "response_time": (0.0, 0.2), "session_duration": (0.0, 0.2),
}


def _now() -> int:
    return int(time.time() * 1000)


def _range_ms(value: str | int | float, field: str = "time_range") -> int:
    if isinstance(value, bool):
        raise ValidationError(field, "a duration such as 1h, 24h or 7d", value)
    if isinstance(value, int | float):
        if value <= 0:
            raise ValidationError(field, "a positive number of milliseconds or a duration such as 1h", value)
        return int(value)
    if not isinstance(value, str):
        raise ValidationError(field, "a duration such as 1h, 24h or 7d", value)
    return duration_ms(value, field)


def _categories(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise ValidationError("categories", "agent names (strings)", item)
    return out


class Analytics:
    """Metrics, anomalies, predictions, alerts and insights over one store (and its live event bus)."""

    def __init__(self, store: Callable[[], QueryableStore], options: Mapping[str, Any] | None = None, *,
                 emit: Callable[..., None] | None = None, live: bool = True) -> None:
        opts = dict(options or {})
        self._store = store
        self.sensitivity = str(opts.get("sensitivity", "medium"))
        if self.sensitivity not in THRESHOLDS:
            raise ValidationError("analytics.sensitivity", f"one of {', '.join(THRESHOLDS)}",
                                  self.sensitivity)
        self.monitored = [metric_name(m, "analytics.watch")
                          for m in opts.get("watch", ("throughput", "error_rate", "response_time"))]
        self.history_ms = int(float(opts.get("history_hours", 50)) * HOUR)
        self.ttfc_slow_ms = float(opts.get("ttfc_slow_ms", 5000))
        self.anomaly_cooldown_s = float(opts.get("cooldown_s", 300))
        self.live: LiveMetrics | None = LiveMetrics(Pricing(opts.get("prices"))) if live else None
        self._emit = emit
        self.alerts = AlertManager(emit=self._emit_one, record=self._record_alert, log=bool(opts.get("log", True)))
        for hook in opts.get("webhooks", ()):
            self.add_webhook(**hook) if isinstance(hook, Mapping) else self.add_webhook(str(hook))
        for rule in opts.get("thresholds", ()):
            self.set_alert_threshold(**rule)
        self.anomalies: deque[Anomaly] = deque(maxlen=_ANOMALY_MEMORY)
        self.evaluations = 0
        self.last_evaluation: dict[str, Any] | None = None
        self._evaluated_until: int | None = None
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------------------

    @property
    def store(self) -> QueryableStore:
        """The store series and sessions are read from."""
        return self._store()

    def _emit_one(self, name: str, payload: Any) -> None:
        if self._emit is not None:
            self._emit(name, payload)

    def _record_alert(self, alert: Alert) -> None:
        store = self.store
        if isinstance(store, Auditable):
            store.record_audit("analytics", "alert", alert.metric, alert.to_dict())

    def alert_history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return persisted alerts, newest first (the store's audit log, action "alert")."""
        store = self.store
        if not isinstance(store, Auditable):
            return [a.to_dict() for a in reversed(self.alerts.recent)][:limit]
        rows = store.audit_log(limit=max(limit * 5, 500))
        return [r["details"] for r in rows if r.get("action") == "alert" and r.get("details")][:limit]

    # -- metrics -------------------------------------------------------------------------------------

    def window_points(self, since: int, until: int, cats: Sequence[str] = ()) -> tuple[list[RollupPoint], str]:
        """Rollup points covering [since, until]: minutes for short windows; beyond 3 hours, whole hours
        from the hour rollups and minutes only at the two edges (tens of rows per hour instead of
        thousands), the way get_stats() covers a window."""
        if until - since <= 3 * HOUR:
            return rollup_points(self.store, "minute", since // MINUTE * MINUTE, until, cats), "minute"
        first_hour = -(-since // HOUR) * HOUR
        last_hour = until // HOUR * HOUR
        points = rollup_points(self.store, "minute", since // MINUTE * MINUTE, first_hour - 1, cats)
        if last_hour > first_hour:
            points += rollup_points(self.store, "hour", first_hour, last_hour - 1, cats)
        points += rollup_points(self.store, "minute", last_hour, until, cats)
        return points, "hour"

    def get_metrics(self, time_range: str | int = "1h", categories: Iterable[str] | str | None = None, *,
                    now: int | None = None) -> dict[str, Any]:
        """Return events, sessions, errors, performance, throughput, agents, tokens, cost and custom metrics."""
        span = _range_ms(time_range)
        until = _now() if now is None else now
        return self._metrics(span, _categories(categories), until)[0]

    def _metrics(self, span: int, cats: list[str], until: int) -> tuple[dict[str, Any], list[RollupPoint]]:
        """The metrics of a window and the rollup points they came from (insights reuse them)."""
        since = until - span
        points, period = self.window_points(since, until, cats)
        size = MINUTE if period == "minute" else HOUR
        totals = _totals(points)
        stats = self.store.get_stats(StatsFilter(since=since, until=until, categories=cats))
        minutes = max(1.0, span / MINUTE)
        per_bucket: dict[int, int] = {}
        per_hour: dict[int, int] = {}
        per_minute: dict[int, int] = {}
        for p in points:
            bucket = p.bucket_start // size * size
            per_bucket[bucket] = per_bucket.get(bucket, 0) + p.count
            hour = p.bucket_start // HOUR * HOUR
            per_hour[hour] = per_hour.get(hour, 0) + p.count
            per_minute[p.bucket_start] = per_minute.get(p.bucket_start, 0) + p.count
        peak = max(per_bucket.items(), key=lambda kv: kv[1], default=(None, 0))
        peak_hour = max(per_hour.items(), key=lambda kv: kv[1], default=(None, 0))
        current = until // MINUTE * MINUTE
        live = self.live.summary(since, until, cats) if self.live is not None else None
        latency = live["latency"] if live else {}
        events_total = totals["count"]
        body: dict[str, Any] = {
            "time_range": {"since": since, "until": until, "minutes": round(span / MINUTE, 3),
                           "categories": cats},
            "events": {"total": events_total, "per_minute": round(events_total / minutes, 3),
                       "by_type": totals["by_type"]},
            "sessions": {"total": stats.total_sessions, "active": stats.active_sessions,
                         "avg_duration_ms": _round(stats.avg_session_duration_ms)},
            "errors": {"total": totals["errors"],
                       "rate": round(100.0 * totals["errors"] / events_total, 3) if events_total else 0.0},
            "performance": {
                "avg_latency": _round(totals["dsum"] / totals["dcount"]) if totals["dcount"] else None,
                "min": _round(totals["dmin"]), "max": _round(totals["dmax"]),
                "p50": latency.get("p50"), "p95": latency.get("p95"), "p99": latency.get("p99"),
                "time_to_first_chunk": live["time_to_first_chunk"] if live else None,
            },
            "throughput": {"current_per_minute": per_minute.get(current, 0),
                           "peak_per_bucket": peak[1], "peak_bucket": peak[0], "bucket": period,
                           "peak_hour": peak_hour[0], "peak_hour_events": peak_hour[1]},
            "top_agents": totals["agents"][:10],
            "tokens": live["tokens"] if live else None,
            "cost": live["cost"] if live else None,
            "custom": live["custom"] if live else {},
            "source": {"series": f"rollups:{period}", "live": self.live is not None,
                       "live_events": self.live.events_seen if self.live is not None else 0},
        }
        return body, points

    def series(self, metric: str, time_range: str | int = "24h", categories: Iterable[str] | str | None = None,
               *, now: int | None = None, period: str = "minute") -> tuple[list[int], list[float]]:
        """Return one metric's series (timestamps, values) from the rollups."""
        return self.many_series([metric], time_range, categories, now=now, period=period)[metric_name(metric)]

    def many_series(self, metrics: Sequence[str], time_range: str | int = "24h",
                    categories: Iterable[str] | str | None = None, *, now: int | None = None,
                    period: str = "minute") -> dict[str, tuple[list[int], list[float]]]:
        """Return several series from one read of the rollups."""
        size = {"minute": MINUTE, "hour": HOUR, "day": DAY}.get(period)
        if size is None:
            raise ValidationError("period", "minute, hour or day", period)
        names = [metric_name(m) for m in metrics]
        until = _now() if now is None else now
        since = until - _range_ms(time_range)
        points = rollup_points(self.store, period, since // size * size, until, _categories(categories))
        return {name: build_series(points, name, size, since, until) for name in names}

    # -- custom metrics ------------------------------------------------------------------------------

    def define_metric(self, name: str, type: str = "counter", unit: str = "", description: str = "") -> None:
        """Define a custom metric, fed by record_metric() or by events whose metadata carries `name`."""
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", "a metric name", name)
        if type not in METRIC_TYPES:
            raise ValidationError("type", " or ".join(METRIC_TYPES), type)
        if name in SERIES_METRICS:
            raise ValidationError("name", "a name other than the built-in series", name)
        if self.live is None:
            raise ValidationError("name", "a Telemetry that records (custom metrics are live)", name)
        self.live.define(MetricDefinition(name, type, unit, description))  # type: ignore[arg-type]

    def record_metric(self, name: str, value: float, timestamp: int | None = None) -> None:
        """Record one value of a defined custom metric."""
        if self.live is None or name not in self.live.definitions:
            raise ValidationError("name", "a metric defined with define_metric()", name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("value", "a number", value)
        self.live.record(name, float(value), _now() if timestamp is None else timestamp)

    # -- anomalies and predictions -------------------------------------------------------------------

    def detect_anomalies(self, metrics: Sequence[str] | None = None, *, sensitivity: str | None = None,
                         time_range: str | int = "24h", categories: Iterable[str] | str | None = None,
                         now: int | None = None) -> list[dict[str, Any]]:
        """Return anomalies of the given series within time_range (history before it is the baseline)."""
        level = sensitivity or self.sensitivity
        if level not in THRESHOLDS:
            raise ValidationError("sensitivity", ", ".join(THRESHOLDS), level)
        names = [metric_name(m) for m in (metrics or self.monitored)]
        until = _now() if now is None else now
        since = until - _range_ms(time_range)
        found: list[Anomaly] = []
        history = max(self.history_ms, until - since + 4 * HOUR)
        for name, (ts, vs) in self.many_series(names, history, categories, now=until).items():
            ts, vs = _complete(name, ts, vs, until)
            found.extend(_detect(name, ts, vs, level, since))
        found.sort(key=lambda a: a.timestamp)
        return [a.to_dict() for a in found]

    def generate_predictions(self, metrics: Sequence[str] | None = None, minutes_ahead: int = 60, *,
                             history: str | int = "48h", categories: Iterable[str] | str | None = None,
                             now: int | None = None) -> dict[str, Any]:
        """Forecast each series minutes_ahead with 95 % intervals and its backtest error."""
        if isinstance(minutes_ahead, bool) or not isinstance(minutes_ahead, int) or not 1 <= minutes_ahead <= 10_080:
            raise ValidationError("minutes_ahead", "an integer from 1 to 10080", minutes_ahead)
        until = _now() if now is None else now
        out: dict[str, Any] = {}
        names = [metric_name(m) for m in (metrics or ("response_time", "throughput"))]
        for name, (ts, vs) in self.many_series(names, history, categories, now=until).items():
            ts, vs = _complete(name, ts, vs, until)
            if len(vs) < 3:
                out[name] = {"metric": name, "error": "not enough data (at least 3 minutes with values)"}
                continue
            out[name] = forecast(ts, vs, minutes_ahead, metric=name, step_ms=MINUTE).to_dict()
        return out

    # -- alerting ------------------------------------------------------------------------------------

    def set_alert_threshold(self, metric: str, threshold: float, direction: str = "above",
                            severity: str = "warning", *, category: str | None = None,
                            window: str | int = "5m", cooldown: str | int = "5m") -> AlertRule:
        """Alert when a metric (a series, cost, tokens or a custom metric) crosses the threshold."""
        canonical = metric if metric in LIVE_METRICS or (self.live and metric in self.live.definitions) \
            else metric_name(metric, "metric")
        cooldown_ms = 0 if cooldown in (0, "0") else _range_ms(cooldown, "cooldown")
        rule = make_rule(canonical, threshold, direction, severity, category=category,
                         window_s=_range_ms(window, "window") / 1000, cooldown_s=cooldown_ms / 1000)
        return self.alerts.add_rule(rule)

    def add_webhook(self, url: str, *, timeout_s: float = 5.0, retries: int = 3,
                    headers: Mapping[str, str] | None = None) -> WebhookChannel:
        """Send every alert as a JSON POST to url."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationError("url", "an http:// or https:// URL", url)
        hook = WebhookChannel(url, float(timeout_s), int(retries), headers=dict(headers or {}))
        self.alerts.webhooks.append(hook)
        return hook

    def on_alert(self, callback: Callable[[Alert], Any]) -> None:
        """Call callback(alert) for every alert."""
        if not callable(callback):
            raise ValidationError("callback", "a callable", callback)
        self.alerts.callbacks.append(callback)

    def metric_value(self, rule: AlertRule, now: int) -> float | None:
        """The value a threshold rule watches, over its window."""
        since = now - int(rule.window_s * 1000)
        cats = [rule.category] if rule.category else []
        if rule.metric == "cost":
            return self.live.cost_since(since, rule.category) if self.live else None
        if self.live is not None and rule.metric in self.live.definitions:
            custom = self.live.summary(since, now)["custom"][rule.metric]
            value = custom.get("value", custom.get("sum") if custom["type"] == "counter" else custom.get("avg"))
            return None if value is None else float(value)
        if rule.metric == "tokens":
            return float(self.live.summary(since, now, cats)["tokens"]["total"]) if self.live else None
        totals = _totals(rollup_points(self.store, "minute", since // MINUTE * MINUTE, now, cats))
        if rule.metric == "throughput":
            return float(totals["count"]) / max(1.0, rule.window_s / 60)
        if rule.metric == "errors":
            return float(totals["errors"])
        if rule.metric == "error_rate":
            return 100.0 * totals["errors"] / totals["count"] if totals["count"] else None
        if rule.metric == "session_duration":
            return totals["end_dsum"] / totals["end_dcount"] if totals["end_dcount"] else None
        return totals["dsum"] / totals["dcount"] if totals["dcount"] else None

    def evaluate(self, now: int | None = None) -> dict[str, Any]:
        """Run detection on the newest data and check every threshold (the scheduler's analytics job)."""
        with self._lock:
            now = _now() if now is None else now
            # Score the points since the last run (at least the last 3 minutes: late rows, partial buckets).
            start = min(self._evaluated_until or now, now - 3 * MINUTE)
            fresh: list[Anomaly] = []
            for name, (ts, vs) in self.many_series(self.monitored, self.history_ms, now=now).items():
                ts, vs = _complete(name, ts, vs, now)
                for anomaly in _detect(name, ts, vs, self.sensitivity, start):
                    key = (name, anomaly.timestamp)
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                    fresh.append(anomaly)
            if len(self._seen) > 10 * _ANOMALY_MEMORY:
                self._seen = {(a.metric, a.timestamp) for a in self.anomalies}
            fired: list[Alert] = []
            for anomaly in fresh:
                self.anomalies.append(anomaly)
                self._emit_one("anomaly", anomaly)
                alert = self.alerts.fire(Alert(f"anomaly:{anomaly.metric}", "anomaly", anomaly.metric,
                                               anomaly.severity, anomaly.description, anomaly.observed,
                                               details=anomaly.to_dict()), self.anomaly_cooldown_s)
                if alert is not None:
                    fired.append(alert)
            for rule in list(self.alerts.rules.values()):
                alert = self.alerts.check_threshold(rule, self.metric_value(rule, now))
                if alert is not None:
                    fired.append(alert)
            self._evaluated_until = now
            self.evaluations += 1
            self.last_evaluation = {"at": now, "anomalies": len(fresh), "alerts": len(fired)}
            return {"anomalies": [a.to_dict() for a in fresh], "alerts": [a.to_dict() for a in fired]}

    # -- insights ------------------------------------------------------------------------------------

    def get_insights(self, time_range: str | int = "24h", categories: Iterable[str] | str | None = None, *,
                     now: int | None = None) -> dict[str, Any]:
        """Return metrics, anomalies, trends and recommendations (each with its evidence)."""
        span = _range_ms(time_range)
        cats = _categories(categories)
        until = _now() if now is None else now
        since = until - span
        metrics, now_points = self._metrics(span, cats, until)
        if self.evaluations and not cats:
            anomalies = [a.to_dict() for a in self.anomalies if a.timestamp >= since]
        else:  # no scheduled evaluation in this process (the CLI), or one agent's view: detect now
            anomalies = self.detect_anomalies(time_range=span, categories=cats, now=until)
        before, _ = self.window_points(since - span, since - 1, cats)
        return {
            "time_range": metrics["time_range"],
            "generated_at": _now(),
            "available": True,
            "metrics": metrics,
            "anomalies": anomalies,
            "trends": _trends(before, now_points),
            "recommendations": self._recommendations(metrics, before, now_points, anomalies, until),
            "alerts": [a.to_dict() for a in self.alerts.recent if a.timestamp >= since][-20:],
        }

    def _recommendations(self, metrics: Mapping[str, Any], before: Sequence[RollupPoint],
                         current: Sequence[RollupPoint], anomalies: Sequence[Mapping[str, Any]],
                         now: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        old = {a["agent"]: a for a in _totals(before)["agents"]}
        for agent in _totals(current)["agents"]:
            prev = old.get(agent["agent"])
            rate, prev_rate = agent["error_rate"], prev["error_rate"] if prev else 0.0
            if agent["errors"] >= 5 and rate >= 2 * max(prev_rate, 0.5):
                out.append({"kind": "error_rate_increase", "severity": "critical" if rate >= 20 else "warning",
                            "message": f"Agent {agent['agent'] or '(none)'}: error rate {rate:.1f}% vs "
                                       f"{prev_rate:.1f}% in the previous period; look at its recent errors "
                                       f"(`telemetry query --type error --agent {agent['agent']}`)",
                            "evidence": {"agent": agent["agent"], "error_rate": rate, "previous_error_rate": prev_rate,
                                         "errors": agent["errors"], "events": agent["events"]}})
        stale_before = now - 30 * MINUTE
        # Sessions started in the last 7 days only (the start_time index bounds the read), at most 200.
        open_sessions = self.store.get_sessions(SessionFilter(statuses=["active"], since=now - 7 * DAY,
                                                              until=stale_before, limit=200))
        abandoned = [s for s in open_sessions if (s.last_event_time or s.start_time) < stale_before]
        if abandoned:
            out.append({"kind": "abandoned_sessions", "severity": "warning",
                        "message": f"{len(abandoned)} session(s) have had no event for 30 minutes and never ended: "
                                   "call track_end (or use `with telemetry.session(...)`) so they close",
                        "evidence": {"count": len(abandoned), "sample_session_ids": [s.id for s in abandoned[:5]],
                                     "oldest_start": min(s.start_time for s in abandoned)}})
        ttfc = metrics["performance"].get("time_to_first_chunk") or {}
        if ttfc.get("p95") is not None and ttfc["p95"] > self.ttfc_slow_ms:
            out.append({"kind": "slow_time_to_first_chunk", "severity": "warning",
                        "message": f"Time to first chunk p95 is {ttfc['p95']:.0f} ms (above "
                                   f"{self.ttfc_slow_ms:.0f} ms): users wait before seeing output; "
                                   "check prompt size and model choice",
                        "evidence": ttfc})
        if metrics["errors"]["rate"] >= 5 and metrics["events"]["total"] >= 20:
            rate = metrics["errors"]["rate"]
            out.append({"kind": "high_error_rate", "severity": "critical" if rate >= 20 else "warning",
                        "message": f"{rate:.1f}% of events are errors",
                        "evidence": {"errors": metrics["errors"], "events": metrics["events"]["total"]}})
        if anomalies:
            worst = max(anomalies, key=lambda a: abs(a["score"]))
            out.append({"kind": "anomalies", "severity": worst["severity"],
                        "message": f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}; "
                                   f"the strongest: {worst['description']}",
                        "evidence": {"count": len(anomalies), "strongest": worst}})
        return out

    # -- live feed -----------------------------------------------------------------------------------

    def warm_from_store(self, since: int, limit: int = 100_000) -> int:
        """Replay up to `limit` stored events into the live metrics (read-only CLI processes); return how many."""
        store = self.store
        if self.live is None or not isinstance(store, EventIterable):
            return 0
        n = 0
        for event in store.iter_events(QueryFilter(since=since, limit=limit)):
            self.live.on_event(event)
            n += 1
        return n


def _detect(name: str, ts: list[int], vs: list[float], sensitivity: str, since: int) -> list[Anomaly]:
    absolute, relative = MIN_CHANGE.get(name, (0.0, 0.0))
    return detect_anomalies(ts, vs, sensitivity, metric=name, since=since, min_change=absolute,
                            min_relative_change=relative)


def _complete(name: str, ts: list[int], vs: list[float], now: int) -> tuple[list[int], list[float]]:
    """Drop the current minute's partial count (it looks like a dip); rates and means keep it."""
    if name in ("throughput", "errors") and ts and ts[-1] > now - MINUTE:
        return ts[:-1], vs[:-1]
    return ts, vs


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _totals(points: Iterable[RollupPoint]) -> dict[str, Any]:
    count = errors = dcount = end_dcount = 0
    dsum = end_dsum = 0.0
    dmin: float | None = None
    dmax: float | None = None
    by_type: dict[str, int] = {}
    agents: dict[str, list[int]] = {}
    for p in points:
        count += p.count
        errors += p.error_count
        by_type[p.event_type] = by_type.get(p.event_type, 0) + p.count
        agent = agents.setdefault(p.category, [0, 0])
        agent[0] += p.count
        agent[1] += p.error_count
        if p.event_type == "end":
            end_dsum += p.duration_sum
            end_dcount += p.duration_count
            continue
        dsum += p.duration_sum
        dcount += p.duration_count
        if p.duration_min is not None:
            dmin = p.duration_min if dmin is None else min(dmin, p.duration_min)
        if p.duration_max is not None:
            dmax = p.duration_max if dmax is None else max(dmax, p.duration_max)
    ranked = sorted(agents.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {"count": count, "errors": errors, "dsum": dsum, "dcount": dcount, "dmin": dmin, "dmax": dmax,
            "end_dsum": end_dsum, "end_dcount": end_dcount, "by_type": by_type,
            "agents": [{"agent": a, "events": n, "errors": e, "error_rate": round(100.0 * e / n, 3) if n else 0.0}
                       for a, (n, e) in ranked]}


def _trends(before: Sequence[RollupPoint], current: Sequence[RollupPoint]) -> list[dict[str, Any]]:
    """Compare this period with the previous one of the same length, per headline metric."""
    a, b = _totals(before), _totals(current)
    pairs = {
        "throughput": (a["count"], b["count"]),
        "error_rate": (100.0 * a["errors"] / a["count"] if a["count"] else None,
                       100.0 * b["errors"] / b["count"] if b["count"] else None),
        "response_time": (a["dsum"] / a["dcount"] if a["dcount"] else None,
                          b["dsum"] / b["dcount"] if b["dcount"] else None),
        "session_duration": (a["end_dsum"] / a["end_dcount"] if a["end_dcount"] else None,
                             b["end_dsum"] / b["end_dcount"] if b["end_dcount"] else None),
    }
    out = []
    for metric, (old, new) in pairs.items():
        if old is None or new is None:
            continue
        change = 100.0 * (new - old) / old if old else (100.0 if new else 0.0)
        direction = "up" if change > 10 else "down" if change < -10 else "flat"
        out.append({"metric": metric, "direction": direction, "change_pct": round(change, 1),
                    "previous": _round(float(old)), "current": _round(float(new)),
                    "evidence": f"{metric} {float(old):.4g} in the previous period, {float(new):.4g} in this one"})
    return out
