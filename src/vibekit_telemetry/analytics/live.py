"""Live metrics, updated per committed event from the bus: latency and TTFC sketches, tokens, cost, custom metrics.

Memory is bounded: one small window per minute for `retention_minutes` (older windows are dropped),
quantile sketches instead of value lists, and capped maps of open sessions and per-session cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..events import TelemetryEvent
from .pricing import Pricing, model_of, token_usage
from .sketch import QuantileSketch

MINUTE_MS: Final = 60_000
MetricType = Literal["counter", "gauge", "histogram"]
METRIC_TYPES: Final = ("counter", "gauge", "histogram")
_MAX_OPEN_SESSIONS: Final = 10_000
_MAX_COSTED_SESSIONS: Final = 10_000
# Distinct (agent, model) pairs the cumulative counters keep apart; beyond, they add up under OTHER
# (a Prometheus label set must stay small whatever clients send).
MAX_USAGE_KEYS: Final = 500
OTHER: Final = "_other"


@dataclass(slots=True)
class MetricDefinition:
    """A user-defined metric: fed by `record_metric` or by events whose metadata carries its name."""

    name: str
    type: MetricType
    unit: str = ""
    description: str = ""


@dataclass(slots=True)
class _Window:
    """What one minute contributed."""

    latency: QuantileSketch = field(default_factory=QuantileSketch)
    ttfc: QuantileSketch = field(default_factory=QuantileSketch)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cost_by_agent: dict[str, float] = field(default_factory=dict)
    cost_by_model: dict[str, float] = field(default_factory=dict)
    custom: dict[str, QuantileSketch] = field(default_factory=dict)


class LiveMetrics:
    """Incremental metrics from committed events; `on_event` is the bus handler (writer thread)."""

    def __init__(self, pricing: Pricing | None = None, retention_minutes: int = 1440) -> None:
        self.pricing = pricing or Pricing()
        self.retention_minutes = retention_minutes
        self.definitions: dict[str, MetricDefinition] = {}
        self.gauges: dict[str, float] = {}
        self.events_seen = 0
        self._windows: dict[int, _Window] = {}
        self._newest = 0
        self._starts: OrderedDict[str, int] = OrderedDict()
        self._session_cost: OrderedDict[str, float] = OrderedDict()
        # Since this process started, per (agent, model): USD, prompt and completion tokens (counters).
        self.usage_totals: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def define(self, definition: MetricDefinition) -> None:
        """Register a custom metric."""
        self.definitions[definition.name] = definition

    def _window(self, timestamp: int) -> _Window:
        minute = timestamp // MINUTE_MS
        window = self._windows.get(minute)
        if window is None:
            window = self._windows[minute] = _Window()
            if minute > self._newest:
                self._newest = minute
                oldest = minute - self.retention_minutes
                for old in [m for m in self._windows if m < oldest]:
                    del self._windows[old]
        return window

    def on_event(self, event: TelemetryEvent) -> None:
        """Fold one committed event into the metrics (the `event:tracked` handler)."""
        with self._lock:
            self.events_seen += 1
            window = self._window(event.timestamp)
            kind, sid = event.event_type, event.session_id
            if event.duration is not None and kind != "end":
                window.latency.add(event.duration)
            if sid is not None:
                if kind == "start":
                    self._starts[sid] = event.timestamp
                    if len(self._starts) > _MAX_OPEN_SESSIONS:
                        self._starts.popitem(last=False)
                elif kind == "stream":
                    started = self._starts.pop(sid, None)
                    if started is not None:
                        window.ttfc.add(float(max(0, event.timestamp - started)))
                elif kind in ("end", "error"):
                    self._starts.pop(sid, None)
            meta = event.metadata
            if meta:
                self._usage(window, event, meta)
                if self.definitions:
                    for name in self.definitions.keys() & meta.keys():
                        value = meta[name]
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            self._record(window, name, float(value))

    def _usage(self, window: _Window, event: TelemetryEvent, meta: Mapping[str, Any]) -> None:
        prompt, completion = token_usage(meta)
        if not prompt and not completion:
            return
        window.prompt_tokens += prompt
        window.completion_tokens += completion
        model = model_of(meta, event.category)
        cost = self.pricing.cost(model or event.category, prompt, completion)
        agent = event.category or ""
        window.cost += cost
        window.cost_by_agent[agent] = window.cost_by_agent.get(agent, 0.0) + cost
        if model:
            window.cost_by_model[model] = window.cost_by_model.get(model, 0.0) + cost
        key = (agent, model or "")
        totals = self.usage_totals.get(key)
        if totals is None:
            if len(self.usage_totals) >= MAX_USAGE_KEYS:
                key = (OTHER, OTHER)
            totals = self.usage_totals.setdefault(key, [0.0, 0.0, 0.0])
        totals[0] += cost
        totals[1] += prompt
        totals[2] += completion
        if event.session_id is not None:
            costs = self._session_cost
            costs[event.session_id] = costs.pop(event.session_id, 0.0) + cost
            if len(costs) > _MAX_COSTED_SESSIONS:
                costs.popitem(last=False)

    def record(self, name: str, value: float, timestamp: int) -> None:
        """Record a value of a defined custom metric."""
        with self._lock:
            self._record(self._window(timestamp), name, value)

    def _record(self, window: _Window, name: str, value: float) -> None:
        definition = self.definitions[name]
        if definition.type == "gauge":
            self.gauges[name] = value
        sketch = window.custom.get(name)
        if sketch is None:
            sketch = window.custom[name] = QuantileSketch()
        sketch.add(value)

    def summary(self, since: int, until: int, categories: Iterable[str] = ()) -> dict[str, Any]:
        """Merge the windows of [since, until]: quantiles, tokens, cost, custom metrics."""
        wanted = set(categories)
        latency, ttfc = QuantileSketch(), QuantileSketch()
        prompt = completion = 0
        cost = 0.0
        by_agent: dict[str, float] = {}
        by_model: dict[str, float] = {}
        custom: dict[str, QuantileSketch] = {}
        with self._lock:
            windows = [w for m, w in self._windows.items() if since // MINUTE_MS <= m <= until // MINUTE_MS]
            for w in windows:
                latency.merge(w.latency)
                ttfc.merge(w.ttfc)
                prompt += w.prompt_tokens
                completion += w.completion_tokens
                for agent, c in w.cost_by_agent.items():
                    if not wanted or agent in wanted:
                        by_agent[agent] = by_agent.get(agent, 0.0) + c
                        cost += c
                for model, c in w.cost_by_model.items():
                    by_model[model] = by_model.get(model, 0.0) + c
                for name, sketch in w.custom.items():
                    custom.setdefault(name, QuantileSketch()).merge(sketch)
            top_sessions = sorted(self._session_cost.items(), key=lambda kv: -kv[1])[:5]
            gauges = dict(self.gauges)
        return {
            "latency": _quantiles(latency),
            "time_to_first_chunk": _quantiles(ttfc),
            "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
            "cost": {"total_usd": round(cost, 6), "by_agent": _rounded(by_agent), "by_model": _rounded(by_model),
                     "top_sessions": [{"session_id": s, "usd": round(c, 6)} for s, c in top_sessions]},
            "custom": {name: {**self._describe(name), **_quantiles(custom.get(name, QuantileSketch())),
                              **({"value": gauges[name]} if name in gauges else {})}
                       for name in self.definitions},
        }

    def usage_counters(self) -> dict[tuple[str, str], tuple[float, int, int]]:
        """(agent, model) -> (USD, prompt tokens, completion tokens) since this process started counting."""
        with self._lock:
            return {k: (v[0], int(v[1]), int(v[2])) for k, v in self.usage_totals.items()}

    def cost_since(self, since: int, category: str | None = None) -> float:
        """Return the USD spent since `since` (one agent, or all)."""
        with self._lock:
            return sum(w.cost if category is None else w.cost_by_agent.get(category, 0.0)
                       for m, w in self._windows.items() if m >= since // MINUTE_MS)

    def _describe(self, name: str) -> dict[str, Any]:
        d = self.definitions[name]
        return {"type": d.type, "unit": d.unit, "description": d.description}


def _quantiles(sketch: QuantileSketch) -> dict[str, Any]:
    return {"count": sketch.count, "avg": _r(sketch.mean), "p50": _r(sketch.quantile(0.5)),
            "p95": _r(sketch.quantile(0.95)), "p99": _r(sketch.quantile(0.99)),
            "min": _r(sketch.min if sketch.count else None), "max": _r(sketch.max if sketch.count else None),
            "sum": round(sketch.sum, 6)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in sorted(values.items(), key=lambda kv: -kv[1])}
