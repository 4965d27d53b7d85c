"""Alert routing: threshold rules and the values they watch, channels (webhook, callback), history, counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ..errors import ValidationError
from ..store.base import Auditable, QueryableStore
from .alerts import Alert, AlertManager, AlertRule, WebhookChannel, make_rule
from .live import LiveMetrics
from .series import metric_name
from .window import range_ms, totals, window_sums

# Live (bus) metrics thresholds can watch besides the rollup series.
LIVE_METRICS: Final = ("cost", "tokens")


class AlertRouting:
    """Owns the AlertManager of one engine: rules in, alerts out to the log, bus, store, callbacks, webhooks."""

    def __init__(self, store: Callable[[], QueryableStore], live: LiveMetrics | None,
                 emit: Callable[[str, Any], None], *, log: bool = True) -> None:
        self._store = store
        self.live = live
        self.manager = AlertManager(emit=emit, record=self._record, log=log)
        # Alerts fired in this process by (kind, severity): the Prometheus counter.
        self.fired: dict[tuple[str, str], int] = {}

    def _record(self, alert: Alert) -> None:
        key = (alert.kind, alert.severity)
        self.fired[key] = self.fired.get(key, 0) + 1
        store = self._store()
        if isinstance(store, Auditable):
            store.record_audit("analytics", "alert", alert.metric, alert.to_dict())

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return persisted alerts, newest first (the store's audit log, action "alert")."""
        store = self._store()
        if not isinstance(store, Auditable):
            return [a.to_dict() for a in reversed(self.manager.recent)][:limit]
        rows = store.audit_log(limit=max(limit * 5, 500))
        return [r["details"] for r in rows if r.get("action") == "alert" and r.get("details")][:limit]

    def set_threshold(self, metric: str, threshold: float, direction: str = "above", severity: str = "warning", *,
                      category: str | None = None, window: str | int = "5m",
                      cooldown: str | int = "5m") -> AlertRule:
        """Alert when a metric (a series, cost, tokens or a custom metric) crosses the threshold."""
        custom = self.live is not None and metric in self.live.definitions
        canonical = metric if metric in LIVE_METRICS or custom else metric_name(metric, "metric")
        cooldown_ms = 0 if cooldown in (0, "0") else range_ms(cooldown, "cooldown")
        rule = make_rule(canonical, threshold, direction, severity, category=category,
                         window_s=range_ms(window, "window") / 1000, cooldown_s=cooldown_ms / 1000)
        return self.manager.add_rule(rule)

    def add_webhook(self, url: str, *, timeout_s: float = 5.0, retries: int = 3,
                    headers: Mapping[str, str] | None = None) -> WebhookChannel:
        """Send every alert as a JSON POST to url."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationError("url", "an http:// or https:// URL", url)
        hook = WebhookChannel(url, float(timeout_s), int(retries), headers=dict(headers or {}))
        self.manager.webhooks.append(hook)
        return hook

    def on_alert(self, callback: Callable[[Alert], Any]) -> None:
        """Call callback(alert) for every alert."""
        if not callable(callback):
            raise ValidationError("callback", "a callable", callback)
        self.manager.callbacks.append(callback)

    def metric_value(self, rule: AlertRule, now: int) -> float | None:
        """The value a threshold rule watches, over its window."""
        since = now - int(rule.window_s * 1000)
        cats = [rule.category] if rule.category else []
        live = self.live
        if rule.metric == "cost":
            return live.cost_since(since, rule.category) if live else None
        if live is not None and rule.metric in live.definitions:
            custom = live.summary(since, now)["custom"][rule.metric]
            value = custom.get("value", custom.get("sum") if custom["type"] == "counter" else custom.get("avg"))
            return None if value is None else float(value)
        if rule.metric == "tokens":
            return float(live.summary(since, now, cats)["tokens"]["total"]) if live else None
        sums = totals(window_sums(self._store(), since, now, cats))
        if rule.metric == "throughput":
            return float(sums["count"]) / max(1.0, rule.window_s / 60)
        if rule.metric == "errors":
            return float(sums["errors"])
        if rule.metric == "error_rate":
            return 100.0 * sums["errors"] / sums["count"] if sums["count"] else None
        if rule.metric == "session_duration":
            return sums["end_dsum"] / sums["end_dcount"] if sums["end_dcount"] else None
        return sums["dsum"] / sums["dcount"] if sums["dcount"] else None

    def check_thresholds(self, now: int) -> list[Alert]:
        """Check every rule against its current value; return the alerts that fired."""
        fired = []
        for rule in list(self.manager.rules.values()):
            alert = self.manager.check_threshold(rule, self.metric_value(rule, now))
            if alert is not None:
                fired.append(alert)
        return fired
