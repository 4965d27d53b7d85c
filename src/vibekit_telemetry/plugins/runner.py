"""One plugin's isolation: its own thread, a timeout per call, error counts, disabled after N failures.

Hooks never run on the caller's or the writer's thread: a plugin that hangs only ever blocks its own
thread. While a call is stuck past its timeout the plugin is skipped (events pass unchanged) until the
call returns; `max_failures` failures in a row (raised or timed out) disable it for good.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..events import TelemetryEvent
from .base import implemented_hooks, plugin_name, rescued

logger = logging.getLogger("vibekit_telemetry")

_Job = tuple[Callable[[], Any], "Future[Any] | None"]


class PluginRunner:
    """Runs one plugin's hooks on its own daemon thread, isolated from tracking."""

    def __init__(self, plugin: Any, *, timeout_s: float = 1.0, max_failures: int | None = 10,
                 max_pending: int = 10_000) -> None:
        self.plugin = plugin
        self.name = plugin_name(plugin)
        self.hooks = implemented_hooks(plugin)
        self.timeout_s = timeout_s
        self.max_failures = max_failures
        self.max_pending = max_pending
        self.calls = 0
        self.errors = 0
        self.timeouts = 0
        self.skipped = 0
        self.disabled: str | None = None  # why it was disabled, with the last error's text
        self.disabled_reason: str | None = None  # the same without error text (for public health checks)
        self.last_error: str | None = None
        self.last_exception: BaseException | None = None
        self._consecutive = 0
        self._stuck = False
        self._pending = 0
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- state ----------------------------------------------------------------------------------------

    def has(self, hook: str) -> bool:
        """Whether the plugin implements `hook`."""
        return hook in self.hooks

    @property
    def active(self) -> bool:
        """Not disabled and not stuck in a call past its timeout."""
        return self.disabled is None and not self._stuck

    def status(self) -> dict[str, Any]:
        """Counts and state for health (get_health_status, /api/health, /health/ready)."""
        version = getattr(self.plugin, "version", None)
        return {"name": self.name, "version": version if isinstance(version, str) else None,
                "enabled": self.disabled is None, "hooks": list(self.hooks), "calls": self.calls,
                "errors": self.errors, "timeouts": self.timeouts, "skipped": self.skipped,
                "disabled": self.disabled, "disabled_reason": self.disabled_reason, "stuck": self._stuck,
                "last_error": self.last_error}

    def _failed(self, reason: str) -> None:
        with self._lock:
            self.last_error = reason
            self._consecutive += 1
            if self.max_failures and self._consecutive >= self.max_failures and self.disabled is None:
                count = f"{self._consecutive} failure{'' if self._consecutive == 1 else 's'} in a row"
                self.disabled = f"{count}; last: {reason}"
                self.disabled_reason = count
                logger.warning("telemetry plugin %s disabled: %s", self.name, self.disabled)

    def _error(self, hook: str, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.last_exception = exc
        logger.debug("telemetry plugin %s.%s raised", self.name, hook, exc_info=exc)
        self._failed(f"{hook}: {type(exc).__name__}: {exc}")

    def _ok(self) -> None:
        if self._consecutive:
            with self._lock:
                self._consecutive = 0

    # -- the plugin's thread --------------------------------------------------------------------------

    def _start(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:  # a forked child (threads do not survive fork) or after stop()
                    self._jobs = queue.SimpleQueue()
                    self._stuck = False
                    self._pending = 0
                self._thread = threading.Thread(target=self._serve, name=f"telemetry-plugin-{self.name}",
                                                daemon=True)  # a hung plugin must not keep the process alive
                self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            work, future = job
            try:
                result = work()
            except BaseException as exc:
                if future is not None:
                    future.set_exception(exc)
            else:
                if future is not None:
                    future.set_result(result)
            finally:
                with self._lock:
                    self._stuck = False  # the call came back: the plugin is usable again
                    if future is None:
                        self._pending -= 1
        if self._loop is not None:
            self._loop.close()

    def resolve(self, value: Any) -> Any:
        """On the plugin's thread: await what an async hook returned."""
        if inspect.isawaitable(value):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(value)
        return value

    def _run(self, hook: str, work: Callable[[], Any], default: Any) -> Any:
        """Run work on the plugin's thread and wait up to the timeout; default if it fails or hangs."""
        if not self.active:
            with self._lock:
                self.skipped += 1
            return default
        self._start()
        future: Future[Any] = Future()
        with self._lock:
            self.calls += 1
            errors_before = self.errors
        self._jobs.put((work, future))
        try:
            result = future.result(self.timeout_s)
        except FutureTimeout:
            with self._lock:
                self.timeouts += 1
                self._stuck = not future.done()
            self._failed(f"{hook}: no answer within {self.timeout_s:g} s")
            return default
        except Exception as exc:
            self._error(hook, exc)
            return default
        if self.errors == errors_before:  # map_events counts per-event errors itself: not a success then
            self._ok()
        return result

    # -- calling hooks --------------------------------------------------------------------------------

    def call(self, hook: str, *args: Any, default: Any = None) -> Any:
        """Call one hook and wait for its answer (default on error, timeout, or when disabled)."""
        fn = self.hooks.get(hook)
        if fn is None:
            return default
        return self._run(hook, lambda: self.resolve(fn(*args)), default)

    def map_events(self, hook: str, events: list[TelemetryEvent]) -> list[TelemetryEvent | None]:
        """Pass each event through a per-event hook in one trip to the plugin's thread.

        An event the hook raises on passes unchanged (counted). On a timeout, the events the hook had
        finished keep its answers; the event it is still working on goes on as a copy made when the
        time ran out (the late call can only change the original, which nothing uses any more); the
        others pass untouched, as the late call takes no further event. So a call that times out never
        changes an event the writer stores. Copying only that one event, not every event up front
        (4-5 µs per event, over the 2 µs target on its own), adds nothing measurable to an empty hook
        (bench/bench_plugins.py).
        """
        fn = self.hooks[hook]
        out: list[TelemetryEvent | None] = []
        state = [False, -1]  # [abandoned by the caller, index of the event the hook was last given]

        def work() -> list[TelemetryEvent | None]:
            for index, event in enumerate(events):
                # Announce, then check (the caller sets, then reads, in the opposite order): either the
                # caller sees this index, or this sees `abandoned` and stops. No lock: it costs ~4x the
                # loop, and the GIL keeps each thread's list stores in program order.
                state[1] = index
                if state[0]:
                    break
                try:
                    result = fn(event)
                    if type(result) is not TelemetryEvent and result is not None:
                        result = self.resolve(result)
                except Exception as exc:
                    self._error(hook, exc)
                    result = event
                out.append(result if result is None or isinstance(result, TelemetryEvent) else event)
            return out

        late = object()
        answer = self._run(hook, work, late)
        if answer is not late:
            return answer  # type: ignore[no-any-return]
        state[0] = True
        at = int(state[1])  # the late call stops before any event after this one
        if at < 0:  # skipped, or never started: nothing was touched
            return list(events)
        finished = out[:at + 1]  # a list copy: the late call may still append
        if len(finished) <= at:  # the event at `at` is in the late call's hands: go on with a copy
            finished.append(rescued(events[at]))
        return [*finished, *events[at + 1:]]

    def fire(self, hook: str, *args: Any) -> None:
        """Queue a hook call without waiting (after_track, after_store); skipped when too many are pending."""
        fn = self.hooks.get(hook)
        if fn is None:
            return
        with self._lock:
            if not self.active or self._pending >= self.max_pending:
                self.skipped += 1
                return
            self._pending += 1
            self.calls += 1
        self._start()

        def work() -> None:
            try:
                self.resolve(fn(*args))
            except Exception as exc:
                self._error(hook, exc)
            else:
                self._ok()

        self._jobs.put((work, None))

    def stop(self, timeout_s: float) -> None:
        """Call shutdown() on the plugin (bounded) and stop its thread."""
        self.call("shutdown")
        thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join(timeout_s)
