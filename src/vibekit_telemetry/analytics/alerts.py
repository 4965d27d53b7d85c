"""Alerting: threshold rules and anomaly alerts, cooldown and de-duplication, history, channels.

Channels: the log, webhooks (JSON POST on a background thread, with a timeout and retries with
backoff, so a dead receiver never holds up evaluation) and Python callbacks; every alert is also
emitted on the bus as `alert` and kept in the store's audit log (action "alert") as its history.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ..errors import ValidationError

logger = logging.getLogger("vibekit_telemetry.alerts")

SEVERITIES: Final = ("info", "warning", "critical")
DIRECTIONS: Final = ("above", "below")


@dataclass(slots=True)
class AlertRule:
    """Alert when `metric` is above/below `threshold` (over `window_s`, optionally for one agent)."""

    metric: str
    threshold: float
    direction: str = "above"
    severity: str = "warning"
    category: str | None = None
    window_s: float = 300.0
    cooldown_s: float = 300.0

    @property
    def key(self) -> str:
        """The de-duplication key: one open alert per rule."""
        return f"threshold:{self.metric}:{self.direction}:{self.threshold:g}:{self.category or '*'}"


@dataclass(slots=True)
class Alert:
    """One fired alert."""

    key: str
    kind: str  # threshold | anomaly
    metric: str
    severity: str
    message: str
    value: float | None
    threshold: float | None = None
    timestamp: int = field(default_factory=lambda: int(time.time() * 1000))
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    category: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the alert as a plain dict (the webhook body)."""
        return asdict(self)


def make_rule(metric: str, threshold: Any, direction: str = "above", severity: str = "warning", *,
              category: str | None = None, window_s: Any = 300.0, cooldown_s: Any = 300.0) -> AlertRule:
    """Validate and build a rule; errors name the argument."""
    if not isinstance(metric, str) or not metric:
        raise ValidationError("metric", "a metric name", metric)
    for name, value in (("threshold", threshold), ("window_s", window_s), ("cooldown_s", cooldown_s)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(name, "a number", value)
    if direction not in DIRECTIONS:
        raise ValidationError("direction", "above or below", direction)
    if severity not in SEVERITIES:
        raise ValidationError("severity", f"one of {', '.join(SEVERITIES)}", severity)
    if window_s <= 0 or cooldown_s < 0:
        raise ValidationError("window_s" if window_s <= 0 else "cooldown_s", "window > 0 and cooldown >= 0",
                              window_s if window_s <= 0 else cooldown_s)
    return AlertRule(metric, float(threshold), direction, severity, category, float(window_s), float(cooldown_s))


_RULE_KEYS: Final = frozenset({"metric", "threshold", "direction", "severity", "category", "window", "cooldown"})


def check_rule_options(rule: Any, field: str) -> None:
    """Check a configured threshold rule's keys and values; the error names the rule and key."""
    if not isinstance(rule, dict):
        raise ValidationError(field, "an object with metric, threshold, direction, severity", rule)
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown:
        raise ValidationError(f"{field}.{unknown[0]}", "one of " + ", ".join(sorted(_RULE_KEYS)), rule[unknown[0]])
    try:
        make_rule(rule.get("metric", ""), rule.get("threshold"), rule.get("direction", "above"),
                  rule.get("severity", "warning"))
    except ValidationError as exc:
        raise ValidationError(f"{field}.{exc.field}", exc.expected, exc.got) from None


@dataclass(slots=True)
class WebhookChannel:
    """POST each alert as JSON; retried with backoff on failure, bounded by a timeout per attempt."""

    url: str
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    headers: dict[str, str] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None

    def send(self, alert: Alert) -> bool:
        """Deliver one alert (blocking, with retries); True when the receiver answered 2xx."""
        body = json.dumps(alert.to_dict(), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "vibekit-telemetry-alerts",
                   **self.headers}
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        self.delivered += 1
                        return True
                    self.last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                self.last_error = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver refuses this body: retrying sends the same body
            except (OSError, ValueError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2 ** attempt)
        self.failed += 1
        logger.warning("alert webhook %s failed: %s", self.url, self.last_error)
        return False


class AlertManager:
    """Decides which alerts fire (cooldown, de-duplication) and hands them to every channel."""

    def __init__(self, *, emit: Callable[[str, Any], None] | None = None,
                 record: Callable[[Alert], None] | None = None, log: bool = True) -> None:
        self.rules: dict[str, AlertRule] = {}
        self.webhooks: list[WebhookChannel] = []
        self.callbacks: list[Callable[[Alert], Any]] = []
        self.log = log
        self._emit = emit
        self._record = record
        self._last_fired: dict[str, float] = {}
        self._open: set[str] = set()
        self._deliveries: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.recent: list[Alert] = []

    def add_rule(self, rule: AlertRule) -> AlertRule:
        """Add (or replace, same key) a threshold rule."""
        self.rules[rule.key] = rule
        return rule

    def check_threshold(self, rule: AlertRule, value: float | None) -> Alert | None:
        """Fire the rule's alert if the value crosses it (once per crossing, then after its cooldown)."""
        crossed = value is not None and (value > rule.threshold if rule.direction == "above"
                                         else value < rule.threshold)
        if not crossed:
            self._open.discard(rule.key)  # back to normal: the next crossing alerts again
            return None
        assert value is not None
        scope = f" for {rule.category}" if rule.category else ""
        alert = Alert(rule.key, "threshold", rule.metric, rule.severity,
                      f"{rule.metric}{scope} is {value:.4g}, {rule.direction} the threshold {rule.threshold:g}",
                      value, rule.threshold, category=rule.category, details={"window_s": rule.window_s})
        return self.fire(alert, rule.cooldown_s, repeat_while_open=False)

    def fire(self, alert: Alert, cooldown_s: float, *, repeat_while_open: bool = True) -> Alert | None:
        """Send an alert unless the same key fired within cooldown_s (or is still open)."""
        now = time.monotonic()
        with self._lock:
            last = self._last_fired.get(alert.key)
            if last is not None and now - last < cooldown_s:
                return None
            if not repeat_while_open and alert.key in self._open and last is not None:
                return None
            self._last_fired[alert.key] = now
            self._open.add(alert.key)
            self.recent = [*self.recent[-99:], alert]
        self._deliver(alert)
        return alert

    def _deliver(self, alert: Alert) -> None:
        if self.log:
            level = logging.ERROR if alert.severity == "critical" else logging.WARNING
            logger.log(level, "telemetry alert [%s] %s", alert.severity, alert.message)
        if self._record is not None:
            try:
                self._record(alert)
            except Exception as exc:
                logger.warning("telemetry alert history not saved: %s", exc)
        if self._emit is not None:
            self._emit("alert", alert)
        for callback in self.callbacks:
            try:
                callback(alert)
            except Exception:
                logger.exception("telemetry alert callback %r failed", callback)
        for hook in self.webhooks:
            thread = threading.Thread(target=hook.send, args=(alert,), name="vibekit-alert-webhook", daemon=True)
            thread.start()
            with self._lock:
                self._deliveries = [t for t in self._deliveries if t.is_alive()] + [thread]

    def wait_deliveries(self, timeout: float = 30.0) -> bool:
        """Wait for webhook deliveries under way; True when all finished (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._deliveries)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in pending)
