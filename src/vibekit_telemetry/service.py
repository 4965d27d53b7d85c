"""The Telemetry facade: what applications call. Recording never blocks on I/O and never raises by default.

Telemetry is the public API only (recording, reads, lifecycle); the moving parts (stores, processor
chain, writer, scheduler, exporters) belong to its Runtime (runtime.py), health reporting to health.py.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .analytics_api import AnalyticsAPI
from .calling_styles import end_event, error_event, keyword_fields, start_event, stream_event
from .config import TelemetryConfig, load_config
from .emitter import Emitter, Handler
from .errors import StoreError, TelemetryError, ValidationError
from .events import _FOLDED_KEYS, EVENT_TYPES, FIELD_ALIASES, TelemetryEvent, now_ms
from .export.facade import ExportMethods
from .health import health_status, health_summary, performance_metrics
from .ids import uuid7
from .processing import Processor
from .query import parse_query, parse_session_filter, parse_stats_filter
from .sessions import SessionContext
from .store.base import QueryableStore, Session, Stats, StorageProvider

if TYPE_CHECKING:
    from .runtime import Runtime
    from .server.runner import ServerHandle

logger = logging.getLogger("vibekit_telemetry")
_time_ns = time.time_ns
# Every key a dict event may have (each field's spellings, and the folded `status` / `error`).
_DICT_KEYS = frozenset(FIELD_ALIASES) | _FOLDED_KEYS


class Telemetry(AnalyticsAPI, ExportMethods):  # analytics: analytics_api.py (#10); export: export/facade.py (#11)
    """Track agent sessions and events; a background thread batches them into the stores.

    Args:
        config: a TelemetryConfig or a dict in snake_case or the seeds' camelCase.
        config_file: a TOML file (what `telemetry init` writes); TELEMETRY_CONFIG names one too.
        processors: your own chain steps (objects with `name` and process(event) -> event | None).
        **options: any TelemetryConfig field, e.g. service_name, db_path, storage, raise_on_error.
    """

    def __init__(self, config: TelemetryConfig | Mapping[str, Any] | None = None, *,
                 config_file: str | os.PathLike[str] | None = None, processors: Sequence[Processor] = (),
                 **options: Any) -> None:
        self.config = load_config(config, config_file=config_file, **options)
        self._raise = self.config.raise_on_error
        self._disabled = self.config.disabled
        self._emitter = Emitter()
        self._runtime: Runtime | None = None
        if self._disabled:
            return
        from .runtime import Runtime

        plugins: list[Any] = []
        if self.config.plugins:  # plugins=[...] (issue 15): objects or names, checked before anything starts
            from .plugins import build_plugin

            plugins = [build_plugin(spec, f"plugins[{i}]") for i, spec in enumerate(self.config.plugins)]
        self._runtime = Runtime(self.config, self._emitter, processors=processors)
        try:
            for plugin in plugins:
                self.use(plugin)
        except BaseException:  # a plugin refused its settings: leave no writer running behind the error
            self._runtime.shutdown(timeout=5.0)
            raise

    @property
    def runtime(self) -> Runtime | None:
        """The moving parts (None when tracking is disabled)."""
        return self._runtime

    @property
    def store(self) -> QueryableStore:
        """The primary store: the first provider that answers queries."""
        if self._runtime is None:
            raise StoreError("tracking is disabled (disabled=True, TELEMETRY_DISABLED or DO_NOT_TRACK)")
        return self._runtime.store

    @property
    def providers(self) -> list[StorageProvider]:
        """Every storage provider events are written to."""
        return list(self._runtime.providers) if self._runtime is not None else []

    def add_processor(self, processor: Processor, *, before: str | None = None, after: str | None = None) -> None:
        """Insert your own step into the chain (default: just before truncate); see docs/pipeline.md."""
        if self._runtime is not None:
            self._runtime.chain.add(processor, before=before, after=after)

    def use(self, plugin: Any) -> Telemetry:
        """Add a plugin (hooks around track, store, query, export; see docs/plugins.md); returns self."""
        if self._runtime is not None:
            self._runtime.plugin_manager().add(plugin, self)
        return self

    def create_event_stream(self, filter: Mapping[str, Any] | None = None, *, buffer_size: int = 10_000) -> Any:
        """Live committed events (filter by session_id, category, event_type) to iterate or `async for`."""
        from .streaming import EventStream

        return EventStream(self._emitter, filter, buffer_size=buffer_size)

    def broadcast(self, channel: str, data: Any) -> None:
        """Send JSON-encodable data on a channel to every live subscriber: in-process, WebSocket, SSE, gRPC."""
        from .streaming.broadcast import emit_broadcast

        emit_broadcast(self._emitter, channel, data)

    def create_batcher(self, batch_size: int = 100, flush_interval: float = 1000, max_retries: int = 3) -> Any:
        """A Batcher: add() events, sent in batches every batch_size events or flush_interval ms, retried."""
        from .streaming import Batcher

        if self._runtime is None:
            raise ValidationError("batcher", "a recording Telemetry (this one is disabled)")
        return Batcher(self._runtime, batch_size=batch_size, flush_interval=flush_interval, max_retries=max_retries)

    def _around_query(self, kind: str, filter: Any, query: Any) -> Any:
        plugins = self._runtime.plugins if self._runtime is not None else None
        return query(filter) if plugins is None else plugins.around_query(kind, filter, query)

    # -- recording ------------------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> bool:
        """Bad input found on the caller's thread: raise it in strict mode; otherwise count, log, announce."""
        # Anything unexpected (an int too large for a float, a cyclic dict …) is bad input too: it
        # must never escape into the application in the default mode.
        exc = error if isinstance(error, TelemetryError) else ValidationError(
            "event", "valid event values", message=f"event: {type(error).__name__}: {error}")
        if self._raise:
            raise exc from (None if exc is error else error)
        if self._runtime is not None:
            self._runtime.count_caller_invalid(exc)
        logger.warning("telemetry event dropped: %s", exc)
        if self._emitter.has("error"):
            self._emitter.emit("error", exc, None)
        return False

    def _record_now(self, raw: Sequence[Any]) -> int:
        """Run the chain on this thread and queue the result: all events or none; the count accepted.

        Events a processor chose to drop (sampling, a filter) count as accepted: not an error, and a
        sampled-out start still returns its session id so the caller can go on with the session.
        Returns -1 when the input was refused as invalid, 0 when valid events found the queue full.
        """
        runtime = self._runtime
        assert runtime is not None
        try:
            events = runtime.process_now(raw)
        except Exception as exc:
            self._fail(exc)
            return -1
        if not events:
            return len(raw)  # a processor chose to drop them (sampling, a filter): not an error
        return len(raw) if runtime.submit_processed(events) is not None else 0

    def track(self, event: TelemetryEvent | Mapping[str, Any]) -> bool:
        """Record one event (a TelemetryEvent or a dict); return False if it was not accepted.

        By default a dict whose field names and event type are known, and a TelemetryEvent, are queued
        at once and go through the processor chain on the writer thread, where a bad value is counted,
        logged and announced (`error`): True means "queued". Anything else, and every event with
        raise_on_error=True, goes through the chain here: False (or ValidationError) when it is bad.
        """
        runtime = self._runtime
        if runtime is None:
            return False
        if not self._raise:
            if (type(event) is dict and event.keys() <= _DICT_KEYS
                    and type(kind := event.get("event_type") or event.get("eventType") or event.get("type")) is str
                    and kind in EVENT_TYPES):
                # The fast path (DESIGN.md performance budget): copy what the caller may reuse (shallow:
                # metadata and context too), note the time, queue. The chain runs on the writer.
                data = event.copy()
                meta = data.get("metadata")
                if type(meta) is dict:
                    data["metadata"] = meta.copy()
                if "context" in data and type(data["context"]) is dict:
                    data["context"] = data["context"].copy()
                return runtime.submit((data, _time_ns()))
            if type(event) is TelemetryEvent and event.event_type in EVENT_TYPES:
                if not event.timestamp:  # the caller's clock, so events keep the order they were tracked in
                    event.timestamp = _time_ns() // 1_000_000
                return runtime.submit(event)
        return self._record_now([event]) == 1

    def track_batch(self, events: Iterable[TelemetryEvent | Mapping[str, Any]]) -> int:
        """Record many events through the chain on this thread; return how many were queued.

        Strict mode: all or nothing (BatchValidationError names every bad event as events[i].field).
        Default: bad events are counted, logged and announced; the others are queued together.
        """
        runtime = self._runtime
        if runtime is None:
            return 0
        items = list(events)
        if not items:
            return 0
        if self._raise:
            return max(0, self._record_now(items))
        processed = runtime.chain.run(items)
        if not processed:
            return 0
        return len(processed) if runtime.submit_processed(processed) is not None else 0

    def track_start(self, agent_type: str | Mapping[str, Any] | None = None, mode: str | None = None,
                    prompt: str | None = None, *legacy: Any, session_id: str | None = None,
                    sandbox_id: str | None = None, repo_url: str | None = None,
                    metadata: Mapping[str, Any] | None = None, timestamp: int | None = None,
                    context: Mapping[str, Any] | None = None, **fields: Any) -> str:
        """Start a session and return its id ("" when the start was not accepted, in the default mode).

        Styles: track_start("claude", "code", "Fix this bug", metadata={...}); keywords as the seeds
        name them (session_id=, agent_type=, agentType=, mode=, prompt=, sandbox_id=, repo_url=); a dict
        with the seeds' names; or the legacy (session_id, agent_type, mode, prompt, sandbox_id, repo_url,
        metadata). The start goes through the chain here, so the id returned names a recorded start.
        """
        if self._runtime is None:
            return session_id or uuid7()
        try:
            if fields:
                agent_type = keyword_fields("start", agent_type, fields, session_id=session_id, mode=mode,
                                            prompt=prompt, sandbox_id=sandbox_id, repo_url=repo_url,
                                            metadata=metadata, timestamp=timestamp, context=context)
                mode = prompt = session_id = sandbox_id = repo_url = metadata = timestamp = context = None
            sid, event = start_event(agent_type, mode, prompt, legacy, session_id=session_id,
                                     sandbox_id=sandbox_id, repo_url=repo_url, metadata=metadata,
                                     timestamp=timestamp, context=context)
        except Exception as exc:
            self._fail(exc)
            return ""
        # "" only for a start refused as invalid. A valid start dropped under backpressure keeps its id:
        # the session's later events still go in (the store creates the session from the first one that
        # arrives), so one dropped event costs one event.
        return "" if self._record_now([event]) < 0 else sid

    def track_stream(self, session_id: str | Mapping[str, Any] | None = None, stream_data: str | None = None,
                     *legacy: Any, metadata: Mapping[str, Any] | None = None,
                     timestamp: int | None = None, **fields: Any) -> bool:
        """Record one streamed output chunk of a session.

        Styles: track_stream(session_id, "chunk"); keywords as the seeds name them (session_id=,
        stream_data=, category=, action=, metadata= …, snake_case or camelCase); a dict; or legacy
        VibeKit (session_id, agent_type, mode, prompt, stream_data, sandbox_id, repo_url, metadata).
        """
        if (type(session_id) is str and type(stream_data) is str and not legacy and metadata is None
                and timestamp is None and not fields and not self._raise and self._runtime is not None):
            # The common call, kept short (positional arguments, no ABC isinstance): the chain fills
            # in the session's category and action on the writer.
            return self._runtime.submit(TelemetryEvent("stream", None, session_id, None, None, None, stream_data,
                                                       None, None, _time_ns() // 1_000_000))
        if self._runtime is None:
            return False
        try:
            if fields:
                session_id = keyword_fields("stream", session_id, fields, stream_data=stream_data,
                                            metadata=metadata, timestamp=timestamp)
                stream_data = metadata = timestamp = None
            event = stream_event(session_id, stream_data, legacy, metadata=metadata, timestamp=timestamp)
        except Exception as exc:
            return self._fail(exc)
        return self.track(event)

    def track_end(self, session_id: str | Mapping[str, Any] | None = None, status: str = "completed",
                  *legacy: Any, metadata: Mapping[str, Any] | None = None, duration: float | None = None,
                  timestamp: int | None = None, **fields: Any) -> bool:
        """End a session as completed (default), error or cancelled.

        Styles: track_end(session_id, "completed"); keywords (session_id=, agent_type=, metadata=
        {"status": "success"} …); a dict; or legacy VibeKit (session_id, agent_type, mode, prompt,
        sandbox_id, repo_url, metadata).
        """
        if self._runtime is None:
            return False
        try:
            if fields:
                session_id = keyword_fields("end", session_id, fields, metadata=metadata, duration=duration,
                                            timestamp=timestamp, status=None if status == "completed" else status)
                metadata = duration = timestamp = None
            event = end_event(session_id, status, legacy, metadata=metadata, duration=duration,
                              timestamp=timestamp)
        except Exception as exc:
            return self._fail(exc)
        return self.track(event)

    def track_error(self, session_id: str | Mapping[str, Any] | None = None,
                    error: BaseException | str | None = None, *legacy: Any,
                    metadata: Mapping[str, Any] | None = None, timestamp: int | None = None,
                    **fields: Any) -> bool:
        """Record an error in a session (an exception or a message).

        Styles: track_error(session_id, exc); keywords (session_id=, error=, category= …); a dict with
        `error`; or legacy VibeKit (session_id, agent_type, mode, prompt, error, sandbox_id, repo_url,
        metadata).
        """
        if self._runtime is None:
            return False
        try:
            if fields:
                if isinstance(error, BaseException):
                    error = f"{type(error).__name__}: {error}"
                session_id = keyword_fields("error", session_id, fields, error=error, metadata=metadata,
                                            timestamp=timestamp)
                error = metadata = timestamp = None
            event = error_event(session_id, error, legacy, metadata=metadata, timestamp=timestamp)
        except Exception as exc:
            return self._fail(exc)
        return self.track(event)

    def session(self, agent_type: str, mode: str | None = None, prompt: str | None = None, *,
                metadata: Mapping[str, Any] | None = None, session_id: str | None = None,
                sandbox_id: str | None = None, repo_url: str | None = None) -> SessionContext:
        """A context manager (sync or async) for one session: ends completed, or error on exception."""
        return SessionContext(self, agent_type, mode, prompt, metadata=metadata, session_id=session_id,
                              sandbox_id=sandbox_id, repo_url=repo_url)

    # -- lifecycle ------------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Kept for seed 001 code (`await telemetry.initialize()`): the constructor already opened everything."""

    def flush_buffers(self, timeout: float | None = 10.0) -> bool:
        """Seed 003's name for flush()."""
        return self.flush(timeout)

    def get_performance_metrics(self) -> dict[str, Any]:
        """Seed 003's writer metrics: buffered events, events written, flush counts and times."""
        return performance_metrics(self._runtime)

    def health_check(self) -> dict[str, Any]:
        """Seed 003's health summary: database reachable, buffer below capacity, free disk space in MB."""
        return health_summary(self.get_health_status())

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event recorded so far is committed to the store.

        False when the timeout passed first, when there is no store, or when anything tracked since
        the previous flush() was lost (dropped, invalid, refused by the store): get_health_status()
        says which.
        """
        if self._runtime is None:
            return True
        return self._runtime.flush(timeout)

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued, stop the writer and close the stores; safe to call twice."""
        runtime = self._runtime
        if runtime is None or runtime.shut_down:
            if runtime is None and not getattr(self, "_announced_shutdown", False):
                self._announced_shutdown = True
                self._emitter.emit("shutdown")
            return True
        finished = runtime.shutdown(timeout)
        self._emitter.emit("shutdown")
        return finished

    @property
    def _shut_down(self) -> bool:
        return self._runtime is None or self._runtime.shut_down

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def start_api_server(self, port: int = 3000, host: str = "127.0.0.1", **options: Any) -> ServerHandle:
        """Serve the HTTP API in a background thread; return a handle with `url` and `stop()` (port=0: any)."""
        from .server.runner import start_api_server

        return start_api_server(self, port, host, **options)

    def on(self, event: str, handler: Handler) -> None:
        """Listen to `event:tracked`, `flush`, `error`, `dropped` or `shutdown` (handlers run on the writer).

        `error` and `dropped` handlers get (error, DropNotice) / (DropNotice): the event's ids, type and
        the reason, never its content, which a later step (redaction) might have removed.
        """
        self._emitter.on(event, handler)

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Stop listening (one handler, or all handlers of the event)."""
        self._emitter.off(event, handler)

    # -- reading ----------------------------------------------------------------------------------

    def query(self, filter: Any = None, **filters: Any) -> list[TelemetryEvent]:
        """Return stored events matching the filters (see docs/query.md for every filter)."""
        return self._around_query("query", parse_query(filter, **filters), self.store.query)  # type: ignore[no-any-return]

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session (with its events if asked), or None."""
        if not isinstance(session_id, str) or not session_id:
            raise ValidationError("session_id", "a non-empty string", session_id)
        return self.store.get_session(session_id, with_events=with_events)

    def get_sessions(self, filter: Any = None, **filters: Any) -> list[Session]:
        """Return sessions filtered by status, category, time and errors."""
        return self._around_query("sessions", parse_session_filter(filter, **filters),  # type: ignore[no-any-return]
                                  self.store.get_sessions)

    def get_stats(self, filter: Any = None, **filters: Any) -> Stats:
        """Return totals, agent shares, date range, size, average duration, breakdown, sampling's kept fraction."""
        parsed = parse_stats_filter(filter, **filters)
        stats = self._around_query("stats", parsed, self.store.get_stats)
        if isinstance(stats, Stats) and stats.sampling is None:
            from .reliability import stats_sampling  # scale counts by 1 / kept_fraction (issue 13)

            stats.sampling = stats_sampling(self.store, self._runtime, parsed.since)
        return stats  # type: ignore[no-any-return]

    def clean(self, retention_days: float | None = None, *, older_than: Any = None,
              session_ids: Sequence[str] = (), categories: Sequence[str] = ()) -> int:
        """Delete events older than retention_days (or matching the filters); return how many went."""
        from .timeparse import parse_time

        cutoff: int | None = None
        if retention_days is not None:
            if isinstance(retention_days, bool) or not isinstance(retention_days, int | float) \
                    or retention_days < 0:
                raise ValidationError("retention_days", "a number of days >= 0", retention_days)
            cutoff = now_ms() - int(retention_days * 86_400_000)
        if older_than is not None:
            cutoff = parse_time(older_than, "older_than")
        if cutoff is None and not session_ids and not categories:
            raise ValidationError("retention_days", "retention_days, older_than, session_ids or categories")
        self.flush()
        return self.store.clean(older_than_ms=cutoff, session_ids=list(session_ids),
                                categories=list(categories))

    def get_health_status(self) -> dict[str, Any]:
        """Return the writer's, the queue's and the stores' health, with every drop counted."""
        if self._runtime is None:
            return {"status": "disabled", "reason": "TELEMETRY_DISABLED / DO_NOT_TRACK or disabled=True"}
        truncate = self._runtime.chain.get("truncate")
        return health_status(self._runtime, int(getattr(truncate, "truncated", 0)))


TelemetryService = Telemetry

__all__ = ["EVENT_TYPES", "Telemetry", "TelemetryService"]
