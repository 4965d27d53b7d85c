"""The analytics engine: one object wiring the parts, each in its own module.

window.py reads a time window from the rollups (metrics), evaluation.py runs detection on the
scheduler, routing.py owns threshold rules and alert channels, insights.py assembles trends and
recommendations, live.py keeps the sketches fed by the bus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from ..query import QueryFilter
from ..store.base import EventIterable, QueryableStore
from .alerts import Alert, AlertManager, AlertRule, WebhookChannel
from .detect import Anomaly
from .evaluation import Evaluator, check_sensitivity, complete, detect, read_series
from .insights import AbandonedSessions, recommendations, trends
from .live import METRIC_TYPES, LiveMetrics, MetricDefinition
from .predict import forecast
from .pricing import Pricing
from .routing import AlertRouting
from .series import SERIES_METRICS, metric_name
from .window import (
    HOUR,
    MINUTE,
    Window,
    categories_of,
    metrics_body,
    now_ms,
    range_ms,
    read_window,
    totals,
    window_sums,
)


class Analytics:
    """Metrics, anomalies, predictions, alerts and insights over one store (and its live event bus)."""

    def __init__(self, store: Callable[[], QueryableStore], options: Mapping[str, Any] | None = None, *,
                 emit: Callable[..., None] | None = None, live: bool = True) -> None:
        opts = dict(options or {})
        self._store = store
        self._emit = emit
        sensitivity = check_sensitivity(str(opts.get("sensitivity", "medium")), "analytics.sensitivity")
        monitored = [metric_name(m, "analytics.watch")
                     for m in opts.get("watch", ("throughput", "error_rate", "response_time"))]
        self.ttfc_slow_ms = float(opts.get("ttfc_slow_ms", 5000))
        self._abandoned = AbandonedSessions()
        self.live: LiveMetrics | None = LiveMetrics(Pricing(opts.get("prices"))) if live else None
        self.routing = AlertRouting(store, self.live, self._emit_one, log=bool(opts.get("log", True)))
        self.evaluator = Evaluator(store, self.routing, self._emit_one, monitored=monitored, sensitivity=sensitivity,
                                   history_ms=int(float(opts.get("history_hours", 50)) * HOUR),
                                   cooldown_s=float(opts.get("cooldown_s", 300)))
        for hook in opts.get("webhooks", ()):
            self.add_webhook(**hook) if isinstance(hook, Mapping) else self.add_webhook(str(hook))
        for rule in opts.get("thresholds", ()):
            self.set_alert_threshold(**rule)

    # -- plumbing ------------------------------------------------------------------------------------

    @property
    def store(self) -> QueryableStore:
        """The store series and sessions are read from."""
        return self._store()

    @property
    def alerts(self) -> AlertManager:
        """The alert manager (rules, channels, recent alerts)."""
        return self.routing.manager

    @property
    def sensitivity(self) -> str:
        """The scheduled evaluation's sensitivity."""
        return self.evaluator.sensitivity

    @property
    def monitored(self) -> list[str]:
        """The series the scheduled evaluation watches."""
        return self.evaluator.monitored

    @property
    def anomalies(self) -> Sequence[Anomaly]:
        """Anomalies the scheduled evaluation found (the newest 500)."""
        return self.evaluator.anomalies

    @property
    def evaluations(self) -> int:
        """How many scheduled evaluations ran."""
        return self.evaluator.evaluations

    @property
    def last_evaluation(self) -> dict[str, Any] | None:
        """When the last evaluation ran and what it found."""
        return self.evaluator.last_evaluation

    def _emit_one(self, name: str, payload: Any) -> None:
        if self._emit is not None:
            self._emit(name, payload)

    def alert_history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return persisted alerts, newest first (the store's audit log, action "alert")."""
        return self.routing.history(limit)

    # -- metrics -------------------------------------------------------------------------------------

    def get_metrics(self, time_range: str | int = "1h", categories: Iterable[str] | str | None = None, *,
                    now: int | None = None) -> dict[str, Any]:
        """Return events, sessions, errors, performance, throughput, agents, tokens, cost and custom metrics."""
        span = range_ms(time_range)
        until = now_ms() if now is None else now
        return self._metrics(read_window(self.store, until - span, until, categories_of(categories)))

    def _metrics(self, window: Window) -> dict[str, Any]:
        live = self.live.summary(window.since, window.until, window.categories) if self.live is not None else None
        return metrics_body(window, live, self.live.events_seen if self.live is not None else None)

    def series(self, metric: str, time_range: str | int = "24h", categories: Iterable[str] | str | None = None,
               *, now: int | None = None, period: str = "minute") -> tuple[list[int], list[float]]:
        """Return one metric's series (timestamps, values) from the rollups."""
        return self.many_series([metric], time_range, categories, now=now, period=period)[metric_name(metric)]

    def many_series(self, metrics: Sequence[str], time_range: str | int = "24h",
                    categories: Iterable[str] | str | None = None, *, now: int | None = None,
                    period: str = "minute") -> dict[str, tuple[list[int], list[float]]]:
        """Return several series from one read of the rollups."""
        until = now_ms() if now is None else now
        return read_series(self.store, metrics, until - range_ms(time_range), until, categories_of(categories),
                           period)

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
        self.live.record(name, float(value), now_ms() if timestamp is None else timestamp)

    # -- anomalies and predictions -------------------------------------------------------------------

    def detect_anomalies(self, metrics: Sequence[str] | None = None, *, sensitivity: str | None = None,
                         time_range: str | int = "24h", categories: Iterable[str] | str | None = None,
                         now: int | None = None) -> list[dict[str, Any]]:
        """Return anomalies of the given series within time_range (history before it is the baseline)."""
        level = check_sensitivity(sensitivity or self.sensitivity)
        names = [metric_name(m) for m in (metrics or self.monitored)]
        until = now_ms() if now is None else now
        since = until - range_ms(time_range)
        history = max(self.evaluator.history_ms, until - since + 4 * HOUR)
        found: list[Anomaly] = []
        for name, (ts, vs) in self.many_series(names, history, categories, now=until).items():
            ts, vs = complete(name, ts, vs, until)
            found.extend(detect(name, ts, vs, level, since))
        found.sort(key=lambda a: a.timestamp)
        return [a.to_dict() for a in found]

    def generate_predictions(self, metrics: Sequence[str] | None = None, minutes_ahead: int = 60, *,
                             history: str | int = "48h", categories: Iterable[str] | str | None = None,
                             now: int | None = None) -> dict[str, Any]:
        """Forecast each series minutes_ahead with 95 % intervals and its backtest error."""
        if isinstance(minutes_ahead, bool) or not isinstance(minutes_ahead, int) or not 1 <= minutes_ahead <= 10_080:
            raise ValidationError("minutes_ahead", "an integer from 1 to 10080", minutes_ahead)
        until = now_ms() if now is None else now
        out: dict[str, Any] = {}
        names = [metric_name(m) for m in (metrics or ("response_time", "throughput"))]
        for name, (ts, vs) in self.many_series(names, history, categories, now=until).items():
            ts, vs = complete(name, ts, vs, until)
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
        return self.routing.set_threshold(metric, threshold, direction, severity, category=category,
                                          window=window, cooldown=cooldown)

    def add_webhook(self, url: str, *, timeout_s: float = 5.0, retries: int = 3,
                    headers: Mapping[str, str] | None = None) -> WebhookChannel:
        """Send every alert as a JSON POST to url."""
        return self.routing.add_webhook(url, timeout_s=timeout_s, retries=retries, headers=headers)

    def on_alert(self, callback: Callable[[Alert], Any]) -> None:
        """Call callback(alert) for every alert."""
        self.routing.on_alert(callback)

    def metric_value(self, rule: AlertRule, now: int) -> float | None:
        """The value a threshold rule watches, over its window."""
        return self.routing.metric_value(rule, now)

    def evaluate(self, now: int | None = None) -> dict[str, Any]:
        """Run detection on the newest data and check every threshold (the scheduler's analytics job)."""
        return self.evaluator.run(now_ms() if now is None else now)

    # -- insights ------------------------------------------------------------------------------------

    def get_insights(self, time_range: str | int = "24h", categories: Iterable[str] | str | None = None, *,
                     now: int | None = None) -> dict[str, Any]:
        """Return metrics, anomalies, trends and recommendations (each with its evidence)."""
        span = range_ms(time_range)
        cats = categories_of(categories)
        until = now_ms() if now is None else now
        since = until - span
        window = read_window(self.store, since, until, cats)
        metrics = self._metrics(window)
        if self.evaluations and not cats:
            anomalies = self.evaluator.recent(since)
        else:  # no scheduled evaluation in this process (the CLI), or one agent's view: detect now
            anomalies = self.detect_anomalies(time_range=span, categories=cats, now=until)
        # The previous period only as totals: one grouped row per agent and event type.
        before = totals(window_sums(self.store, since - span, since - 1, cats))
        return {
            "time_range": metrics["time_range"],
            "generated_at": now_ms(),
            "available": True,
            "metrics": metrics,
            "anomalies": anomalies,
            "trends": trends(before, window.sums),
            "recommendations": recommendations(metrics, before, window.sums, anomalies,
                                               self._abandoned.find(self.store, until), self.ttfc_slow_ms),
            "alerts": [a.to_dict() for a in self.alerts.recent if a.timestamp >= since][-20:],
        }

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
