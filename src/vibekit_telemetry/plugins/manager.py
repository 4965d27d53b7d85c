"""The plugins of one Telemetry, plugged into the seams: chain steps, post-commit, read API, export."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..errors import ValidationError
from ..events import TelemetryEvent
from .base import QueryResult
from .runner import PluginRunner


class HookStep:
    """A chain step running one per-event hook of every plugin that has it, a batch per plugin trip."""

    def __init__(self, manager: PluginManager, hook: str, name: str) -> None:
        self.manager = manager
        self.hook = hook
        self.name = name

    def process(self, event: TelemetryEvent) -> TelemetryEvent | None:
        """One event (strict mode): the batch path with a batch of one."""
        return self.process_batch([event])[0]

    def process_batch(self, events: list[TelemetryEvent]) -> list[TelemetryEvent | None]:
        """Return one entry per event: the event (maybe changed) or None when a plugin dropped it."""
        out: list[TelemetryEvent | None] = list(events)
        for runner in self.manager.runners:
            if not runner.has(self.hook):
                continue
            live = [e for e in out if e is not None]
            if not live:
                break
            mapped = iter(runner.map_events(self.hook, live))
            out = [next(mapped) if e is not None else None for e in out]
        return out


class PluginManager:
    """Holds the plugins in order and calls their hooks, each isolated by its PluginRunner."""

    def __init__(self, *, timeout_s: float = 1.0, max_failures: int | None = 10) -> None:
        self.timeout_s = timeout_s
        self.max_failures = max_failures
        self.runners: list[PluginRunner] = []
        self._lock = threading.Lock()
        self.track_step = HookStep(self, "before_track", "plugins:before_track")
        self.store_step = HookStep(self, "before_store", "plugins:before_store")

    def add(self, plugin: Any, telemetry: Any = None) -> PluginRunner:
        """Add a plugin (its hooks run from now on) and call its initialize(telemetry)."""
        if plugin is None or isinstance(plugin, (str, bytes, int, float, dict, list)):
            raise ValidationError("plugin", "a plugin object (with hooks such as before_track)", plugin)
        runner = PluginRunner(plugin, timeout_s=self.timeout_s, max_failures=self.max_failures)
        if not runner.hooks:
            raise ValidationError("plugin", "an object implementing at least one hook "
                                  "(before_track, after_store, before_query …)", plugin)
        with self._lock:
            if any(r.name == runner.name for r in self.runners):
                raise ValidationError("plugin", f"a plugin name not in use ({runner.name!r} already is)",
                                      runner.name)
            self.runners = [*self.runners, runner]  # copy-on-write: the writer iterates a snapshot
        if runner.has("initialize"):
            runner.call("initialize", telemetry)
            if isinstance(runner.last_exception, ValidationError):  # its settings are wrong: say so now
                with self._lock:
                    self.runners = [r for r in self.runners if r is not runner]
                runner.stop(0.1)
                raise runner.last_exception
            if runner.errors or runner.timeouts:  # a plugin that could not start must not half-run
                runner.disabled = f"initialize failed: {runner.last_error}"
                runner.disabled_reason = "initialize failed"
        return runner

    def get(self, name: str) -> Any | None:
        """The plugin called `name`, if any."""
        return next((r.plugin for r in self.runners if r.name == name), None)

    def has(self, hook: str) -> bool:
        """Whether any plugin implements `hook`."""
        return any(r.has(hook) for r in self.runners)

    def status(self) -> list[dict[str, Any]]:
        """Each plugin's counts and state, in order."""
        return [r.status() for r in self.runners]

    def issues(self) -> list[str]:
        """Health issues: each disabled plugin, and each stuck in a call past its timeout."""
        out: list[str] = []
        for runner in self.runners:
            if runner.disabled is not None:
                out.append(f"plugin {runner.name}: disabled ({runner.disabled})")
            elif not runner.active:
                out.append(f"plugin {runner.name}: a call is stuck past its {runner.timeout_s:g} s timeout "
                           "(skipped until it returns)")
        return out

    # -- fire-and-forget hooks ----------------------------------------------------------------------

    def after_track(self, events: list[TelemetryEvent]) -> None:
        """Tell plugins which events passed the chain."""
        for runner in self.runners:
            if runner.has("after_track"):
                for event in events:
                    runner.fire("after_track", event)

    def after_store(self, events: list[TelemetryEvent]) -> None:
        """Tell plugins a batch is committed (called by the writer after the commit)."""
        for runner in self.runners:
            if runner.has("after_store"):
                runner.fire("after_store", list(events))

    # -- around the read API and export --------------------------------------------------------------

    def around_query(self, kind: str, filter: Any, query: Callable[[Any], Any]) -> Any:
        """Run query(filter) between every plugin's before_query and after_query."""
        for runner in self.runners:
            if runner.has("before_query"):
                changed = runner.call("before_query", kind, filter)
                if isinstance(changed, QueryResult):
                    return changed.value
                if changed is not None:
                    filter = changed
        result = query(filter)
        for runner in self.runners:
            if runner.has("after_query"):
                changed = runner.call("after_query", kind, filter, result)
                if changed is not None:
                    result = changed
        return result

    def around_export(self, format: str, filter: Any, export: Callable[[Any], Any]) -> Any:
        """Run export(filter) between every plugin's before_export and after_export."""
        for runner in self.runners:
            if runner.has("before_export"):
                changed = runner.call("before_export", format, filter)
                if changed is not None:
                    filter = changed
        result = export(filter)
        for runner in self.runners:
            if runner.has("after_export"):
                runner.fire("after_export", format, result)
        return result

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Call every plugin's shutdown() (each bounded by its timeout) and stop their threads."""
        for runner in reversed(self.runners):
            runner.stop(timeout_s)
