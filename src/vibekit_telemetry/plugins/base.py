"""The plugin interface: every hook of seed 000 §9.1, each optional, sync or async."""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, fields
from typing import Any, Final

from ..events import TelemetryEvent

logger = logging.getLogger("vibekit_telemetry")

# Hooks in the order an event meets them; query and export hooks wrap the read API and export/.
HOOKS: Final = ("initialize", "shutdown", "before_track", "after_track", "before_store", "after_store",
                "before_query", "after_query", "before_export", "after_export")


@dataclass(slots=True, frozen=True)
class QueryResult:
    """Returned by before_query to answer a query without asking the store (a cache hit)."""

    value: Any


class Plugin:
    """Base class for plugins: override the hooks you need; the others cost nothing (never called).

    Every hook may be a plain method or an `async def`. Hooks run on the plugin's own thread, with a
    timeout; whatever a hook raises or however long it hangs, tracking goes on (see docs/plugins.md).

    - initialize(telemetry) / shutdown(): once, when added with use() / at Telemetry.shutdown().
    - before_track(event) -> event | None: change the event, or None to drop it (after enrich).
    - after_track(event): the event passed the chain (fire-and-forget, before the commit).
    - before_store(event) -> event | None: last change before the commit (after redact, before truncate).
    - after_store(events): a committed batch (fire-and-forget).
    - before_query(kind, filter) -> filter | QueryResult | None: change the filter or answer it.
    - after_query(kind, filter, result) -> result | None: change the result.
    - before_export(format, filter) -> filter | None, after_export(format, result): around export().
    """

    name: str = "plugin"
    version: str = "0"

    def initialize(self, telemetry: Any) -> None:
        """Called once when the plugin is added."""

    def shutdown(self) -> None:
        """Called once when the Telemetry shuts down."""

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        """Return the event (changed or not), or None to drop it."""
        return event

    def after_track(self, event: TelemetryEvent) -> None:
        """The event passed the chain and is queued for the commit."""

    def before_store(self, event: TelemetryEvent) -> TelemetryEvent | None:
        """Return the event about to be committed (changed or not), or None to drop it."""
        return event

    def after_store(self, events: list[TelemetryEvent]) -> None:
        """These events are committed to the primary store."""

    def before_query(self, kind: str, filter: Any) -> Any:
        """Return the filter to use (None: unchanged), or QueryResult(value) to skip the store."""
        return None

    def after_query(self, kind: str, filter: Any, result: Any) -> Any:
        """Return the result to give the caller (None: unchanged)."""
        return None

    def before_export(self, format: str, filter: Any) -> Any:
        """Return the filter to export with (None: unchanged)."""
        return None

    def after_export(self, format: str, result: Any) -> None:
        """An export finished."""


_FIELDS: Final = operator.attrgetter(*(f.name for f in fields(TelemetryEvent)))


def _copy_json(value: Any) -> Any:
    """A copy of JSON-like data, down through dicts and lists (other values are shared, as immutable)."""
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    return value


def detached(event: TelemetryEvent) -> TelemetryEvent:
    """A copy of the event that shares nothing mutable with it (metadata and context copied through)."""
    clone = TelemetryEvent(*_FIELDS(event))
    if clone.metadata is not None:
        clone.metadata = _copy_json(clone.metadata)
    if clone.context is not None:
        clone.context = _copy_json(clone.context)
    return clone


def rescued(event: TelemetryEvent, attempts: int = 5) -> TelemetryEvent:
    """A detached copy of an event a timed-out hook still holds (and may be changing while we copy)."""
    for _ in range(attempts):
        try:
            return detached(event)
        except RuntimeError:  # a dict changed size under the copy: the late call is writing; again
            continue
    logger.warning("telemetry: an event a timed-out plugin keeps changing could not be copied; kept as is")
    return event


def implemented_hooks(plugin: object) -> dict[str, Any]:
    """The hooks a plugin really implements (not inherited no-ops from Plugin), bound."""
    out: dict[str, Any] = {}
    for hook in HOOKS:
        method = getattr(plugin, hook, None)
        if not callable(method):
            continue
        if getattr(type(plugin), hook, None) is getattr(Plugin, hook):
            continue  # the base class's no-op: skip it so an unused hook costs nothing
        out[hook] = method
    return out


def plugin_name(plugin: object) -> str:
    """The plugin's name (its `name`, else its class name)."""
    name = getattr(plugin, "name", None)
    return name if isinstance(name, str) and name and name != "plugin" else type(plugin).__name__
