"""The analytics calls of `Telemetry` (issue 10), kept apart from recording; the engine is imported on first use."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import StoreError

if TYPE_CHECKING:
    from .analytics.alerts import Alert, AlertRule
    from .analytics.engine import Analytics
    from .runtime import Runtime


class AnalyticsAPI:
    """get_metrics, get_insights, detect_anomalies, generate_predictions, alerts and custom metrics."""

    _runtime: Runtime | None

    @property
    def analytics(self) -> Analytics:
        """The analytics engine (live metrics start counting from its first use unless analytics.enabled)."""
        if self._runtime is None:
            raise StoreError("tracking is disabled (disabled=True, TELEMETRY_DISABLED or DO_NOT_TRACK)")
        return self._runtime.enable_analytics()

    def get_metrics(self, time_range: str | int = "1h",
                    categories: Iterable[str] | str | None = None) -> dict[str, Any]:
        """Return events per minute, sessions, error rate, latency percentiles, throughput, tokens, cost."""
        return self.analytics.get_metrics(time_range, categories)

    def get_insights(self, time_range: str | int = "24h",
                     categories: Iterable[str] | str | None = None) -> dict[str, Any]:
        """Return metrics, anomalies, trends and recommendations with their evidence."""
        return self.analytics.get_insights(time_range, categories)

    def detect_anomalies(self, metrics: Sequence[str] | None = None, *, sensitivity: str | None = None,
                         time_range: str | int = "24h") -> list[dict[str, Any]]:
        """Return anomalies of response_time, error_rate, throughput, session_duration (or those given)."""
        return self.analytics.detect_anomalies(metrics, sensitivity=sensitivity, time_range=time_range)

    def generate_predictions(self, metrics: Sequence[str] | None = None, minutes_ahead: int = 60) -> dict[str, Any]:
        """Forecast each metric minutes_ahead, with 95 % intervals and the backtest error."""
        return self.analytics.generate_predictions(metrics, minutes_ahead)

    def set_alert_threshold(self, metric: str, threshold: float, direction: str = "above",
                            severity: str = "warning", **options: Any) -> AlertRule:
        """Alert when metric crosses threshold (options: category, window, cooldown)."""
        return self.analytics.set_alert_threshold(metric, threshold, direction, severity, **options)

    def add_alert_webhook(self, url: str, **options: Any) -> None:
        """POST every alert as JSON to url (options: timeout_s, retries, headers)."""
        self.analytics.add_webhook(url, **options)

    def on_alert(self, callback: Callable[[Alert], Any]) -> None:
        """Call callback(alert) for every alert (also emitted as the `alert` event)."""
        self.analytics.on_alert(callback)

    def define_metric(self, name: str, type: str = "counter", unit: str = "", description: str = "") -> None:
        """Define a custom metric, fed by record_metric() or by events whose metadata carries `name`."""
        self.analytics.define_metric(name, type, unit, description)

    def record_metric(self, name: str, value: float) -> None:
        """Record one value of a custom metric."""
        self.analytics.record_metric(name, value)

    def start_monitoring(self, interval: str | float = "30s") -> None:
        """Evaluate anomalies and alert thresholds every interval on the scheduler."""
        from .timeparse import duration_ms

        seconds = duration_ms(interval, "interval") / 1000 if isinstance(interval, str) else interval
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            from .errors import ValidationError

            raise ValidationError("interval", "a positive number of seconds or a duration such as 60s", interval)
        assert self._runtime is not None
        self._runtime.enable_analytics(schedule=True, interval_s=float(seconds))

    def alert_history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the persisted alerts, newest first."""
        return self.analytics.alert_history(limit)
