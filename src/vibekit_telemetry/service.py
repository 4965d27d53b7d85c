"""The Telemetry facade: what applications call. Recording never blocks on I/O and never raises by default."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .calling_styles import end_event, error_event, start_event, stream_event
from .config import TelemetryConfig, load_config
from .emitter import Emitter, Handler
from .errors import StoreError, TelemetryError, UnknownSessionError, ValidationError
from .events import (
    _FOLDED_KEYS,
    EVENT_TYPES,
    FIELD_ALIASES,
    TelemetryEvent,
    coerce_event,
    encode_json,
    now_ms,
    truncate_fields,
    validate_event,
)
from .ids import uuid7
from .pipeline import WritePipeline, is_transient
from .query import parse_query, parse_session_filter, parse_stats_filter
from .sessions import SessionContext
from .store.base import QueryableStore, Session, Stats, StorageProvider
from .worker import BatchWorker

if TYPE_CHECKING:
    from .server.runner import ServerHandle

logger = logging.getLogger("vibekit_telemetry")
_time_ns = time.time_ns
# Every key a dict event may have (each field's spellings, and the folded `status` / `error`).
_DICT_KEYS = frozenset(FIELD_ALIASES) | _FOLDED_KEYS

_MAX_KNOWN_SESSIONS = 100_000


class Telemetry:
    """Track agent sessions and events; a background thread batches them into the stores.

    Args:
        config: a TelemetryConfig or a dict in snake_case or the seeds' camelCase.
        config_file: a TOML file (what `telemetry init` writes); TELEMETRY_CONFIG names one too.
        **options: any TelemetryConfig field, e.g. service_name, db_path, storage, raise_on_error.
    """

    def __init__(self, config: TelemetryConfig | Mapping[str, Any] | None = None, *,
                 config_file: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self.config = load_config(config, config_file=config_file, **options)
        self._raise = self.config.raise_on_error
        self._disabled = self.config.disabled
        self._emitter = Emitter()
        self._limit = self.config.max_field_length
        self._sessions: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._caller_invalid = 0
        self._truncated = 0
        self._shut_down = False
        self._pid = os.getpid()
        self._providers: list[StorageProvider] = []
        self._store_error: str | None = None
        if self._disabled:
            self._worker: BatchWorker | None = None
            self._pipeline: WritePipeline | None = None
            return
        self._open_providers()
        self._pipeline = WritePipeline(
            self._providers, self._emitter, service_name=self.config.service_name,
            service_version=self.config.service_version,
            context={**({"environment": self.config.environment} if self.config.environment else {}),
                     **self.config.context},
            retry_attempts=self.config.retry_attempts, retry_delay_ms=self.config.retry_delay_ms)
        self._worker = BatchWorker(
            self._write_batch, batch_size=self.config.stream_batch_size,
            interval_s=self.config.stream_flush_interval_ms / 1000, max_batch=self.config.max_batch_size,
            max_queue=self.config.max_queue_size, policy=self.config.backpressure,
            block_timeout_s=self.config.block_timeout_ms / 1000)
        self._last_maintenance = time.monotonic()
        self._new_run()
        self._run_record_errors = 0
        ref = weakref.ref(self)
        atexit.register(_shutdown_at_exit, ref)
        os.register_at_fork(after_in_child=lambda: _after_fork_in_child(ref))

    # -- set-up ------------------------------------------------------------------------------------

    def _open_providers(self) -> None:
        from .store.factory import build_providers

        providers = build_providers(self.config)
        opened: list[StorageProvider] = []
        for provider in providers:
            try:
                provider.initialize()
            except Exception as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if is_transient(exc):
                    # Another process holds the database (often: migrating it right now). Keep the
                    # provider; the writer opens it on first use, waiting the lock out like any write.
                    logger.info("telemetry store %s busy at start-up; opening it on first write: %s",
                                getattr(provider, "name", provider), message)
                    opened.append(provider)
                    continue
                if not isinstance(exc, StoreError | OSError):
                    raise
                if self._raise:
                    raise StoreError(message) from None
                # Never crash the host application over telemetry: record the failure, keep going.
                self._store_error = message
                logger.error("telemetry store %s unavailable: %s", getattr(provider, "name", provider), message)
                continue
            opened.append(provider)
        self._providers = opened

    def _after_fork(self) -> None:
        """In a forked child, open fresh store connections on first use (the parent's are not ours)."""
        self._pid = os.getpid()
        self._sessions = OrderedDict()
        self._reopen_lock = threading.Lock()
        # Disown the parent's connections without closing them: closing a shared socket (a
        # PostgreSQL Terminate message) would end the parent's session too.
        self._call_providers("after_fork", self._providers, logging.DEBUG)
        self._reopen_pending = True
        self._new_run()

    def _ensure_process(self) -> None:
        if not getattr(self, "_reopen_pending", False):
            return
        with self._reopen_lock:  # a reader thread and the writer may both get here first
            if self._reopen_pending:
                self._open_providers()
                if self._pipeline is not None:
                    self._pipeline.providers = list(self._providers)
                self._reopen_pending = False

    @property
    def store(self) -> QueryableStore:
        """The primary store: the first provider that answers queries."""
        self._ensure_process()
        for provider in self._providers:
            if getattr(provider, "supports_query", False):
                return provider  # type: ignore[return-value]
        raise StoreError(self._store_error or "no queryable store is configured (add sqlite or memory)")

    @property
    def providers(self) -> list[StorageProvider]:
        """Every storage provider events are written to."""
        return list(self._providers)

    # -- recording (caller's thread: validate, enrich, enqueue) -----------------------------------

    def _fail(self, error: Exception) -> bool:
        """Bad input: raise it in strict mode; otherwise count, log and announce it, and return False."""
        # Anything unexpected (an int too large for a float, a cyclic dict …) is bad input too: it
        # must never escape into the application in the default mode.
        exc = error if isinstance(error, TelemetryError) else ValidationError(
            "event", "valid event values", message=f"event: {type(error).__name__}: {error}")
        if self._raise:
            raise exc from (None if exc is error else error)
        self._caller_invalid += 1
        if self._pipeline is not None:
            self._pipeline._note_error(str(exc))
        logger.warning("telemetry event dropped: %s", exc)
        if self._emitter.has("error"):
            self._emitter.emit("error", exc, None)
        return False

    def _enqueue(self, event: TelemetryEvent) -> bool:
        if not event.timestamp:
            event.timestamp = _time_ns() // 1_000_000
        if self._raise:
            # Strict mode pays for truncation and JSON encoding here so the caller sees the error;
            # by default the writer does both (_settle, pipeline.prepare).
            if self._limit and truncate_fields(event, self._limit):
                self._truncated += 1
            event.metadata_json = encode_json("metadata", event.metadata)
            event.context_json = encode_json("context", event.context)
        worker = self._worker
        if worker is None:
            return False
        # No os.getpid() check here: the at-fork hooks registered in __init__ reset a forked child.
        if not worker.submit(event):
            if self._emitter.has("dropped"):
                self._emitter.emit("dropped", event)
            return False
        return True

    def track(self, event: TelemetryEvent | Mapping[str, Any]) -> bool:
        """Record one event (a TelemetryEvent or a dict); return False if it was not accepted.

        By default a dict's field names and event type are checked here (False when one is bad) and the
        rest (value checks, aliases, ids, session bookkeeping) runs on the writer thread, where a bad
        value is counted, logged and announced (`error`): True means "queued". With
        raise_on_error=True every check runs here and raises.
        """
        if self._disabled:
            return False
        if (type(event) is dict and not self._raise and event.keys() <= _DICT_KEYS
                and type(kind := event.get("event_type") or event.get("eventType") or event.get("type")) is str
                and kind in EVENT_TYPES):
            # The fast path (DESIGN.md performance budget): field names and type checked here (a bad
            # one takes the full path below, False at once); values are checked on the writer. Copy
            # what the caller may reuse (shallow, as validation did: metadata and context too), stamp
            # the time, queue.
            data = event.copy()
            meta = data.get("metadata")
            if type(meta) is dict:
                data["metadata"] = meta.copy()
            if "context" in data and type(data["context"]) is dict:
                data["context"] = data["context"].copy()
            worker = self._worker
            if worker is not None and worker.submit((data, _time_ns())):
                return True
            if self._emitter.has("dropped"):
                self._emitter.emit("dropped", _event_or_dict(data))
            return False
        try:
            item = validate_event(coerce_event(event))
            if item.event_type == "start" and item.session_id is None:
                item.session_id = uuid7()
            self._remember(item)
            if item.event_type == "end":
                self._check_end(item)
            return self._enqueue(item)
        except Exception as exc:
            return self._fail(exc)

    def track_batch(self, events: Iterable[TelemetryEvent | Mapping[str, Any]]) -> int:
        """Record many events; all are validated first, and none is queued if one is bad (strict mode)."""
        if self._disabled:
            return 0
        prepared: list[TelemetryEvent] = []
        for index, event in enumerate(events):
            try:
                item = validate_event(coerce_event(event))
                if item.event_type == "start" and item.session_id is None:
                    item.session_id = uuid7()
            except ValidationError as exc:
                named = ValidationError(f"events[{index}].{exc.field}", exc.expected, exc.got)
                if self._raise:
                    raise named from None
                self._fail(named)
                continue
            except Exception as exc:
                self._fail(ValidationError(f"events[{index}]", "valid event values",
                                           message=f"events[{index}]: {type(exc).__name__}: {exc}"))
                continue
            prepared.append(item)
        accepted = 0
        for item in prepared:
            try:
                self._remember(item)
                if item.event_type == "end":
                    self._check_end(item)
                accepted += self._enqueue(item)
            except Exception as exc:
                self._fail(exc)
        return accepted

    def _remember(self, event: TelemetryEvent) -> None:
        """Keep the category and action of open sessions so stream/end calls need only the id.

        On the caller's thread in strict mode; otherwise the writer does it, in queue order (_settle).
        """
        if self._raise:
            self._note_session(event)

    def _note_session(self, event: TelemetryEvent) -> None:
        sid = event.session_id
        if sid is None:
            return
        known = self._sessions.get(sid)
        if event.event_type == "start":
            self._sessions[sid] = (event.category, event.action)
            if len(self._sessions) > _MAX_KNOWN_SESSIONS:
                self._sessions.popitem(last=False)
        elif known is not None:
            if event.category is None:
                event.category = known[0]
            if event.action is None:
                event.action = known[1]

    def _check_end(self, event: TelemetryEvent) -> None:
        if not self._raise:
            return  # the writer forgets the session, after the events queued before this end
        sid = event.session_id
        assert sid is not None
        if self._sessions.pop(sid, None) is not None:
            return
        # Not started here: only strict mode looks in the store (I/O); otherwise the writer checks it.
        if self._raise:
            self.flush(5)
            if sid not in self.store.existing_sessions([sid]):
                raise UnknownSessionError(sid)

    def track_start(self, agent_type: str | Mapping[str, Any] | None = None, mode: str | None = None,
                    prompt: str | None = None, *legacy: Any, session_id: str | None = None,
                    sandbox_id: str | None = None, repo_url: str | None = None,
                    metadata: Mapping[str, Any] | None = None, timestamp: int | None = None,
                    context: Mapping[str, Any] | None = None) -> str:
        """Start a session and return its id.

        Styles: track_start("claude", "code", "Fix this bug", metadata={...}); a dict with the seeds'
        names; or the legacy (session_id, agent_type, mode, prompt, sandbox_id, repo_url, metadata).
        """
        try:
            sid, event = start_event(agent_type, mode, prompt, legacy, session_id=session_id,
                                     sandbox_id=sandbox_id, repo_url=repo_url, metadata=metadata,
                                     timestamp=timestamp, context=context)
        except Exception as exc:
            self._fail(exc)
            return session_id or uuid7()
        self.track(event)
        return sid

    def track_stream(self, session_id: str | Mapping[str, Any], stream_data: str | None = None,
                     *legacy: Any, metadata: Mapping[str, Any] | None = None,
                     timestamp: int | None = None) -> bool:
        """Record one streamed output chunk of a session.

        Styles: track_stream(session_id, "chunk"); a dict; or legacy VibeKit
        (session_id, agent_type, mode, prompt, stream_data, sandbox_id, repo_url, metadata).
        """
        if (type(session_id) is str and type(stream_data) is str and not legacy and metadata is None
                and timestamp is None and not self._raise and not self._disabled):
            # The common call, kept short (positional arguments, no ABC isinstance): the writer
            # fills in the session's category and action (_settle).
            return self._enqueue(TelemetryEvent("stream", None, session_id, None, None, None, stream_data,
                                                None, None, _time_ns() // 1_000_000))
        if self._disabled:
            return False
        try:
            event = stream_event(session_id, stream_data, legacy, metadata=metadata, timestamp=timestamp)
        except Exception as exc:
            return self._fail(exc)
        return self.track(event)

    def track_end(self, session_id: str | Mapping[str, Any], status: str = "completed", *legacy: Any,
                  metadata: Mapping[str, Any] | None = None, duration: float | None = None,
                  timestamp: int | None = None) -> bool:
        """End a session as completed (default), error or cancelled.

        Styles: track_end(session_id, "completed"); a dict; or legacy VibeKit
        (session_id, agent_type, mode, prompt, sandbox_id, repo_url, metadata).
        """
        try:
            event = end_event(session_id, status, legacy, metadata=metadata, duration=duration,
                              timestamp=timestamp)
        except Exception as exc:
            return self._fail(exc)
        return self.track(event)

    def track_error(self, session_id: str | Mapping[str, Any], error: BaseException | str | None = None,
                    *legacy: Any, metadata: Mapping[str, Any] | None = None,
                    timestamp: int | None = None) -> bool:
        """Record an error in a session (an exception or a message).

        Styles: track_error(session_id, exc); a dict with `error`; or legacy VibeKit
        (session_id, agent_type, mode, prompt, error, sandbox_id, repo_url, metadata).
        """
        try:
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

    # -- the writer thread ------------------------------------------------------------------------

    def _write_batch(self, items: list[Any]) -> None:
        self._ensure_process()
        assert self._pipeline is not None
        events = items if self._raise else self._settle(items)
        self._pipeline.process(events)
        if time.monotonic() - self._last_maintenance > self.config.maintenance_interval_s:
            self._last_maintenance = time.monotonic()
            self._maintain()
        last = self._last_run_record
        if last is None or time.monotonic() - last >= self.config.writer_stats_interval_s:
            self._record_run()

    def _settle(self, items: list[Any]) -> list[TelemetryEvent]:
        """Finish, in queue order, what track() left to the writer in the default mode.

        Raw dicts become validated events (a bad one is counted and logged as at the caller); every
        event gets its session's category and action, long fields are cut and flagged.
        """
        ready: list[TelemetryEvent] = []
        limit = self._limit
        for item in items:
            if type(item) is tuple:
                data, stamped_ns = item
                try:
                    event = validate_event(coerce_event(data))
                except Exception as exc:
                    self._fail(exc)
                    continue
                if not event.timestamp:
                    event.timestamp = stamped_ns // 1_000_000
                if event.event_type == "start" and event.session_id is None:
                    event.session_id = uuid7(event.timestamp)
            else:
                event = item
            self._note_session(event)
            if event.event_type == "end" and event.session_id is not None:
                self._sessions.pop(event.session_id, None)
            if limit and truncate_fields(event, limit):
                self._truncated += 1
            ready.append(event)
        return ready

    def _new_run(self) -> None:
        """Start a new writer_runs record: at construction, and in a forked child (its own writer)."""
        self._run_id = uuid7()
        self._run_started = now_ms()
        self._last_run_record: float | None = None  # monotonic time of the last record; None: record soon
        # A forked child inherits the parent's pipeline counters: its run counts from here.
        pipeline = getattr(self, "_pipeline", None)
        self._run_base = (pipeline.counters.written, sum(self._dropped().values())) if pipeline else (0, 0)

    def _record_run(self, *, final: bool = False) -> None:
        """Save this writer's counters in the primary store (writer_runs), if it keeps them; never raises.

        Runs on the writer thread after a batch (at most every writer_stats_interval_s) and once more
        in shutdown() (final), so `telemetry stats --performance` in another process can show them.
        A writer that never wrote a batch (a CLI command that only reads) records nothing.
        """
        if self._worker is None or self._pipeline is None or getattr(self, "_reopen_pending", False):
            return  # disabled, or a forked child that has not opened its own stores (nothing written)
        if final and self._last_run_record is None and not self._worker.stats.batches:
            return
        self._last_run_record = time.monotonic()
        try:
            provider = next((p for p in self._providers if getattr(p, "supports_query", False)), None)
            record = getattr(provider, "record_writer_run", None)
            if not callable(record):
                return
            stats = self._worker.stats
            record({
                "run_id": self._run_id, "service_name": self.config.service_name,
                "service_version": self.config.service_version, "host": socket.gethostname(),
                "pid": os.getpid(), "started_at": self._run_started, "updated_at": now_ms(),
                "events_written": self._pipeline.counters.written - self._run_base[0], "batches": stats.batches,
                "total_batch_ms": stats.total_batch_ms, "last_batch_ms": stats.last_batch_ms,
                "max_batch_ms": stats.max_batch_ms, "dropped": sum(self._dropped().values()) - self._run_base[1],
                "queue_depth": self._worker.depth(), "queue_capacity": self._worker.capacity(),
            })
        except Exception as exc:  # metrics must never break the writer
            self._run_record_errors += 1
            log = logger.warning if self._run_record_errors == 1 else logger.debug
            log("telemetry writer metrics not recorded: %s", exc)

    def _maintain(self) -> None:
        """Apply prune_days and max_size_mb on stores that support it (runs on the writer thread)."""
        self._call_providers("prune", self._providers)

    @staticmethod
    def _call_providers(method: str, providers: Sequence[StorageProvider], level: int = logging.WARNING) -> None:
        """Call `method` on every provider that has it; a failure is logged, never raised, and the rest run."""
        for provider in providers:
            call = getattr(provider, method, None)
            if callable(call):
                try:
                    call()
                except Exception as exc:
                    logger.log(level, "telemetry store %s %s failed: %s", getattr(provider, "name", provider),
                               method, exc)

    # -- lifecycle --------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Kept for seed 001 code (`await telemetry.initialize()`): the constructor already opened everything."""

    def flush_buffers(self, timeout: float | None = 10.0) -> bool:
        """Seed 003's name for flush()."""
        return self.flush(timeout)

    def get_performance_metrics(self) -> dict[str, Any]:
        """Seed 003's writer metrics: buffered events, events written, flush counts and times."""
        if self._worker is None or self._pipeline is None:
            return {"active_buffers": 0, "total_buffered_events": 0, "total_events_written": 0, "flushes": 0,
                    "average_flush_time_ms": 0.0, "last_flush_time_ms": 0.0, "dropped_events": 0}
        stats = self._worker.stats
        return {
            "active_buffers": 1 if self._worker.depth() else 0,
            "total_buffered_events": self._worker.depth(),
            "total_events_written": self._pipeline.counters.written,
            "flushes": stats.batches,
            "average_flush_time_ms": round(stats.total_batch_ms / stats.batches, 3) if stats.batches else 0.0,
            "last_flush_time_ms": round(stats.last_batch_ms, 3),
            "dropped_events": sum(self._dropped().values()),  # counters only: no store I/O
        }

    def health_check(self) -> dict[str, Any]:
        """Seed 003's health summary: database reachable, buffer below capacity, free disk space in MB."""
        import shutil

        health = self.get_health_status()
        stores = health.get("stores", [])
        location = next((s.get("location") for s in stores if s.get("location")), None)
        directory = os.path.dirname(os.path.abspath(str(location))) if location and "://" not in str(location) \
            else os.getcwd()
        try:
            free_mb: float | None = round(shutil.disk_usage(directory).free / 1_048_576, 1)
        except OSError:
            free_mb = None
        queue = health.get("queue", {})
        return {
            "database": bool(stores) and all(s.get("reachable", False) for s in stores),
            "buffer": health["status"] != "disabled" and queue.get("depth", 0) < queue.get("capacity", 1),
            "disk_space_mb": free_mb,
            "status": health["status"],
        }

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event recorded so far is written; False if the timeout passed first."""
        if self._worker is None:
            return True
        done = self._worker.flush(timeout)
        self._call_providers("flush", self._providers)
        return done

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued, stop the writer and close the stores; safe to call twice."""
        if self._shut_down:
            return True
        self._shut_down = True
        finished = True
        if self._worker is not None:
            assert self._pipeline is not None
            finished = self._worker.flush(timeout)
            self._pipeline.stopping.set()
            finished = self._worker.shutdown(timeout) and finished
            self._record_run(final=True)
        # A forked child that never wrote still holds its parent's providers: not its to close.
        if not getattr(self, "_reopen_pending", False):
            self._call_providers("shutdown", self._providers)
        self._emitter.emit("shutdown")
        return finished

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def start_api_server(self, port: int = 3000, host: str = "127.0.0.1", **options: Any) -> ServerHandle:
        """Serve the HTTP API in a background thread; return a handle with `url` and `stop()` (port=0: any)."""
        from .server.runner import start_api_server

        return start_api_server(self, port, host, **options)

    def on(self, event: str, handler: Handler) -> None:
        """Listen to `event:tracked`, `flush`, `error`, `dropped` or `shutdown` (handlers run on the writer)."""
        self._emitter.on(event, handler)

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Stop listening (one handler, or all handlers of the event)."""
        self._emitter.off(event, handler)

    # -- reading ----------------------------------------------------------------------------------

    def query(self, filter: Any = None, **filters: Any) -> list[TelemetryEvent]:
        """Return stored events matching the filters (see docs/query.md for every filter)."""
        return self.store.query(parse_query(filter, **filters))

    def get_session(self, session_id: str, *, with_events: bool = False) -> Session | None:
        """Return one session (with its events if asked), or None."""
        if not isinstance(session_id, str) or not session_id:
            raise ValidationError("session_id", "a non-empty string", session_id)
        return self.store.get_session(session_id, with_events=with_events)

    def get_sessions(self, filter: Any = None, **filters: Any) -> list[Session]:
        """Return sessions filtered by status, category, time and errors."""
        return self.store.get_sessions(parse_session_filter(filter, **filters))

    def get_stats(self, filter: Any = None, **filters: Any) -> Stats:
        """Return totals, agent shares, date range, size, average duration and an optional breakdown."""
        return self.store.get_stats(parse_stats_filter(filter, **filters))

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

    def _dropped(self) -> dict[str, int]:
        """Every event lost so far, by reason (the health report's `dropped`)."""
        assert self._worker is not None and self._pipeline is not None
        stats, counters = self._worker.stats, self._pipeline.counters
        return {
            "queue_full": stats.dropped_newest + stats.dropped_block_timeout,
            "oldest_evicted": stats.dropped_oldest,
            "at_shutdown": stats.dropped_at_shutdown,
            "invalid": self._caller_invalid + counters.invalid,
            "rejected_by_store": counters.rejected,
            "store_failures": counters.lost_after_retries,
            "no_store": counters.no_store,
        }

    def get_health_status(self) -> dict[str, Any]:
        """Return the writer's, the queue's and the stores' health, with every drop counted."""
        if self._disabled:
            return {"status": "disabled", "reason": "TELEMETRY_DISABLED / DO_NOT_TRACK or disabled=True"}
        assert self._worker is not None and self._pipeline is not None
        stats, counters = self._worker.stats, self._pipeline.counters
        dropped = self._dropped()
        stores: list[dict[str, Any]] = []
        for provider in self._providers:
            health = getattr(provider, "health", None)
            try:
                stores.append(health() if callable(health) else {"name": getattr(provider, "name", "custom")})
            except Exception as exc:
                stores.append({"name": getattr(provider, "name", "?"), "reachable": False, "error": str(exc)})
        healthy_store = bool(self._providers) and all(s.get("reachable", True) for s in stores)
        status = "healthy"
        if not self._worker.is_alive() or not healthy_store:
            status = "unhealthy"
        elif sum(dropped.values()) or self._worker.depth() > 0.8 * self._worker.capacity():
            status = "degraded"
        batches = stats.batches or 1
        return {
            "status": status,
            "service": {"name": self.config.service_name, "version": self.config.service_version},
            "queue": {"depth": self._worker.depth(), "capacity": self._worker.capacity(),
                      "policy": self.config.backpressure},
            "writer": {"alive": self._worker.is_alive(), "batches": stats.batches,
                       "events_processed": stats.processed, "last_batch_ms": round(stats.last_batch_ms, 3),
                       "avg_batch_ms": round(stats.total_batch_ms / batches, 3),
                       "max_batch_ms": round(stats.max_batch_ms, 3), "batch_errors": stats.batch_errors,
                       "metrics_record_errors": self._run_record_errors},
            "events": {"submitted": stats.submitted, "written": counters.written,
                       "duplicates": counters.duplicates, "truncated": self._truncated,
                       "retries": counters.retries, "store_errors": counters.store_errors},
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "rejected_reasons": dict(counters.rejected_reasons),
            "stores": stores,
            "store_error": self._store_error,
            "last_error": counters.last_error,
        }


def _event_or_dict(data: dict[str, Any]) -> TelemetryEvent | dict[str, Any]:
    """What a `dropped` handler gets for a queued dict: the event, or the dict if it is not one."""
    try:
        return coerce_event(data)
    except TelemetryError:
        return data


def _after_fork_in_child(ref: Callable[[], Telemetry | None]) -> None:
    telemetry = ref()
    if telemetry is not None:
        telemetry._after_fork()


def _shutdown_at_exit(ref: Callable[[], Telemetry | None]) -> None:
    """Flush at interpreter exit so nothing recorded in the last interval is lost."""
    telemetry = ref()
    if telemetry is not None and not telemetry._shut_down:
        telemetry.shutdown(timeout=10.0)


TelemetryService = Telemetry

__all__ = ["EVENT_TYPES", "Telemetry", "TelemetryService"]
