"""The runtime behind a Telemetry: stores, the processor chain, the writer, the scheduler, the exporters.

Telemetry (service.py) is the public API; this object owns the moving parts and their lifecycle (its
periodic jobs are in runtime_jobs.py):

    caller ─► Runtime.submit (raw, microseconds) ─► BatchWorker queue ─► writer thread:
        Chain.run (normalise … encode) ─► WritePipeline.process (one commit) ─► tickets resolved,
        exporters notified, `event:tracked` emitted
    strict mode / HTTP ingest: Chain.run on the caller's thread, then Runtime.submit_processed
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import lifecycle
from .config import TelemetryConfig
from .emitter import Emitter
from .errors import StoreError, ValidationError
from .events import TelemetryEvent
from .pipeline import WritePipeline, is_transient
from .processing import Chain, DropNotice, Processor, build_chain
from .runtime_jobs import schedule_jobs
from .scheduler import Scheduler
from .store.base import ForkAware, QueryableStore, StorageProvider, TimeBounded
from .tickets import Ticket
from .worker import BatchWorker

if TYPE_CHECKING:
    from .analytics.engine import Analytics
    from .export.schedule import ExportScheduler
    from .exporters.manager import ExporterSet
    from .limits import MemoryBudget
    from .plugins.manager import PluginManager
    from .store.sql.writer_process import WriterProcess

logger = logging.getLogger("vibekit_telemetry")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _provider_name(provider: object) -> str:
    return str(getattr(provider, "name", type(provider).__name__))


class Runtime:
    """Owns what a recording Telemetry runs: providers, chain, writer, scheduler, exporters."""

    def __init__(self, config: TelemetryConfig, emitter: Emitter, *,
                 processors: Sequence[Processor] = ()) -> None:
        self.config = config
        self.emitter = emitter
        self.pid = os.getpid()
        self.store_error: str | None = None
        self.providers: list[StorageProvider] = []
        self.chain: Chain = build_chain(config, [*config.processors, *processors])
        self.chain.on_problem = self._on_problem
        self.plugins: PluginManager | None = None  # plugins (issue 15): created by the first Telemetry.use()
        self.caller_invalid = 0
        self._counts_lock = threading.Lock()
        self._reopen_pending = False
        self._reopen_lock = threading.Lock()
        self._losses_at_flush = 0
        self.last_write_at = 0.0  # monotonic time of the writer's last batch (the text index yields to it)
        self._shut_down = False
        # Read once: each reading applies the TELEMETRY_* retention variables, and warns about a bad one.
        self.storage_entries = config.storage_entries()
        self.providers = self._open_providers()
        if config.writer_process:
            self._start_writer_process()
        self.pipeline = WritePipeline(self.providers[:1], emitter, retry_attempts=config.retry_attempts,
                                      retry_delay_ms=config.retry_delay_ms)
        from .reliability import ResourceMonitor, configure_pipeline

        configure_pipeline(self.pipeline, config)  # backoff; breaker and spool for a remote primary
        self.resources = ResourceMonitor(self, config.reliability)
        self.memory: MemoryBudget | None = None
        self.exporters = self._build_exporters()
        self.worker = BatchWorker(
            self._write_batch, batch_size=config.stream_batch_size,
            interval_s=config.stream_flush_interval_ms / 1000, max_batch=config.max_batch_size,
            max_queue=config.max_queue_size, policy=config.backpressure,
            block_timeout_s=config.block_timeout_ms / 1000,
            target_batch_ms=config.reliability.target_commit_ms if config.reliability.adaptive_batching else None,
            backpressure_threshold=config.reliability.backpressure_threshold,
            # With a writer process the next requests are handled while a commit runs: no waiting for them.
            gather_s=0.0 if self.writer_process is not None else None)
        if config.reliability.memory_limit:
            from .reliability import enforce_memory_limit

            self.memory = enforce_memory_limit(self)  # the queue's bound and the spill signal follow it
        from .health import WriterRunRecorder

        self.run_recorder = WriterRunRecorder(self)
        self.scheduler = Scheduler()
        self.analytics: Analytics | None = None  # created by enable_analytics()
        self.export_scheduler: ExportScheduler | None = None  # created by exports()
        schedule_jobs(self)
        self.scheduler.start()
        self.exporters.start()
        lifecycle.on_fork(self)
        lifecycle.on_exit(self)

    # -- set-up --------------------------------------------------------------------------------------

    def _open_providers(self) -> list[StorageProvider]:
        from .store.factory import build_providers

        opened: list[StorageProvider] = []
        for provider in build_providers(self.config, self.storage_entries):
            try:
                provider.initialize()
            except Exception as exc:
                message = _first_line(exc)
                if is_transient(exc):
                    # Another process holds the database (often: migrating it right now). Keep the
                    # provider; the writer opens it on first use, waiting the lock out like any write.
                    logger.info("telemetry store %s busy at start-up; opening it on first write: %s",
                                _provider_name(provider), message)
                    opened.append(provider)
                    continue
                if not isinstance(exc, StoreError | OSError):
                    raise
                if self.config.raise_on_error:
                    raise StoreError(message) from None
                # Never crash the host application over telemetry: record the failure, keep going.
                self.store_error = message
                logger.error("telemetry store %s unavailable: %s", _provider_name(provider), message)
                continue
            opened.append(provider)
        # The first store that answers queries is the primary: the durable log the writer commits to and
        # every other destination follows.
        opened.sort(key=lambda p: not getattr(p, "supports_query", False))
        return opened

    def _start_writer_process(self) -> None:
        """Let the primary SQL store commit in a child process (config.writer_process)."""
        if not self.providers:
            return
        from .store.sql import SQLStore

        primary = self.providers[0]
        if not isinstance(primary, SQLStore):
            logger.info("writer_process: the primary store %s commits in-process (only SQL stores can)",
                        _provider_name(primary))
            return
        try:
            primary.use_writer_process()
        except (StoreError, OSError) as exc:
            # Never fail the host over it: the store commits in this process as without the option.
            logger.error("writer_process: could not start the writer process, committing in-process: %s",
                         _first_line(exc))

    @property
    def writer_process(self) -> WriterProcess | None:
        """The child process that commits for the primary store (writer_process), or None."""
        if not self.config.writer_process or not self.providers:
            return None
        from .store.sql import SQLStore  # loaded already when the option is on

        primary = self.providers[0]
        return primary.writer_process if isinstance(primary, SQLStore) else None

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (None without one, or while a dead one waits to be replaced)."""
        remote = self.writer_process
        return remote.pid if remote is not None else None

    def _build_exporters(self) -> ExporterSet:
        """Every destination but the primary store follows it on its own worker (exporters/)."""
        from .exporters.manager import ExporterSet
        from .exporters.store_copy import StoreExporter

        primary = self.providers[0] if self.providers else None
        exporters = ExporterSet.from_config(self.config, primary, self.storage_entries)
        for index, provider in enumerate(self.providers[1:], start=1):
            exporters.add(StoreExporter(provider, index), field=f"storage[{index}]")
        return exporters

    def enable_analytics(self, *, schedule: bool = False, interval_s: float | None = None) -> Analytics:
        """Create the analytics engine on first use (live metrics from the bus); schedule its evaluation."""
        from .analytics.engine import Analytics  # lazy: `import vibekit_telemetry` stays light

        with self._counts_lock:  # server threads may ask at once: one engine, subscribed once
            if self.analytics is None:
                self.analytics = Analytics(lambda: self.store, self.config.analytics.model_dump(),
                                           emit=self.emitter.emit)
                if self.analytics.live is not None:
                    self.emitter.on("event:tracked", self.analytics.live.on_event)
        if schedule:
            self.scheduler.every("analytics", interval_s or self.config.analytics.interval_s,
                                 self.analytics.evaluate)
        return self.analytics

    def plugin_manager(self) -> PluginManager:
        """The plugins of this runtime; the first call plugs their hook steps into the chain."""
        with self._counts_lock:
            if self.plugins is None:
                from .plugins.manager import PluginManager

                manager = PluginManager(timeout_s=self.config.plugin_timeout_s,
                                        max_failures=self.config.plugin_max_failures or None)
                self.chain.add(manager.track_step, after="enrich")
                self.chain.add(manager.store_step)  # just before truncate: after redact
                self.plugins = manager
        return self.plugins

    def exports(self) -> ExportScheduler:
        """The scheduled exports of this runtime (created on first use)."""
        if self.export_scheduler is None:
            from .export.schedule import ExportScheduler

            self.export_scheduler = ExportScheduler(self.scheduler, lambda: self.store)
        return self.export_scheduler

    @property
    def store(self) -> QueryableStore:
        """The primary store: the first provider that answers queries."""
        self.ensure_process()
        for provider in self.providers:
            if getattr(provider, "supports_query", False):
                return provider  # type: ignore[return-value]
        raise StoreError(self.store_error or "no queryable store is configured (add sqlite or memory)")

    # -- fork and exit -------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """In a forked child: new locks; the parent's connections disowned, fresh ones opened on first use."""
        self.pid = os.getpid()
        self._counts_lock = threading.Lock()
        self._reopen_lock = threading.Lock()
        self.chain._lock = threading.Lock()
        for step in self.chain.processors:  # enrich, sample, rate_limit: fresh locks
            if hasattr(step, "after_fork"):
                step.after_fork()
        # Disown the parent's connections without closing them: closing a shared socket (a
        # PostgreSQL Terminate message) would end the parent's session too.
        for provider in self.providers:
            if isinstance(provider, ForkAware):
                try:
                    provider.after_fork()
                except Exception as exc:
                    logger.debug("telemetry store %s after_fork failed: %s", _provider_name(provider), exc)
        self._reopen_pending = True
        # The child's writer counts its queue drops from zero (its own worker); every other counter
        # goes on from the parent's figure: that is the child's baseline for "lost since the last flush".
        stats = self.worker.stats
        self._losses_at_flush = self.losses() - (stats.dropped_newest + stats.dropped_block_timeout
                                                 + stats.dropped_oldest + stats.dropped_at_shutdown
                                                 + stats.dropped_memory)
        self.run_recorder.new_run()

    def ensure_process(self) -> None:
        """In a forked child, open this process's own store connections (once)."""
        if not self._reopen_pending:
            return
        with self._reopen_lock:  # a reader thread and the writer may both get here first
            if self._reopen_pending:
                self.providers = self._open_providers()
                if self.config.writer_process:
                    self._start_writer_process()
                self.pipeline.providers = self.providers[:1]
                if self.pipeline.spool is not None:
                    from .reliability import configure_pipeline

                    configure_pipeline(self.pipeline, self.config)  # this process's own spool connection
                self._reopen_pending = False

    @property
    def reopen_pending(self) -> bool:
        """True in a forked child that has not opened its own stores yet."""
        return self._reopen_pending

    def shutdown_at_exit(self) -> None:
        """Flush at interpreter exit so nothing recorded in the last interval is lost."""
        if not self._shut_down:
            self.shutdown(timeout=10.0)

    # -- the caller's side ---------------------------------------------------------------------------

    def submit(self, item: Any) -> bool:
        """Queue raw input for the chain on the writer; False when it was dropped (queue full, shut down)."""
        if self.worker.submit(item):
            return True
        if self.emitter.has("dropped"):
            self.emitter.emit("dropped", _raw_notice(item, "queue full or shut down"))
        return False

    def process_now(self, raw: Sequence[Any]) -> list[TelemetryEvent]:
        """Run the chain on the caller's thread (strict mode, HTTP ingest): all valid, or raise."""
        return self.chain.run(raw, strict=True)

    def submit_processed(self, events: list[TelemetryEvent], *, urgent: bool = False,
                         on_done: Callable[[Ticket], None] | None = None) -> Ticket | None:
        """Queue events the chain already processed as one ticket; None when the queue refused it.

        urgent wakes the writer now (someone waits for the commit); on_done runs on the writer after it.
        """
        ticket = Ticket(events, on_done)
        if self.worker.submit_bulk(ticket, len(events), urgent=urgent):
            return ticket
        if self.emitter.has("dropped"):
            for event in events:
                self.emitter.emit("dropped", DropNotice("queue full or shut down", "queue", event.event_id,
                                                        event.session_id, event.event_type))
        return None

    def count_caller_invalid(self, error: BaseException) -> None:
        """Count input refused on the caller's thread before it reached the chain (lenient mode)."""
        with self._counts_lock:
            self.caller_invalid += 1
        self.pipeline.note_error(str(error))

    def _on_problem(self, kind: str, notice: DropNotice, error: BaseException | None) -> None:
        """An event the chain refused (invalid) or a processor dropped, reported to listeners by id only."""
        if kind == "invalid":
            self.pipeline.note_error(notice.reason)
            logger.warning("telemetry event dropped by %s: %s", notice.processor, notice.reason)
            if self.emitter.has("error"):
                self.emitter.emit("error", error if error is not None else ValidationError(
                    "event", notice.reason, message=notice.reason), notice)
        elif self.emitter.has("dropped"):
            self.emitter.emit("dropped", notice)

    # -- the writer thread ---------------------------------------------------------------------------

    def _write_batch(self, items: list[Any]) -> None:
        """Process raw items through the chain (in queue order), commit once, resolve tickets."""
        self.ensure_process()
        ready: list[TelemetryEvent] = []
        tickets: list[Ticket] = []
        pending: list[Any] = []
        for item in items:
            if type(item) is Ticket:
                if pending:
                    ready.extend(self.chain.run(pending))
                    pending = []
                ready.extend(item.events)
                tickets.append(item)
            else:
                pending.append(item)
        if pending:
            ready.extend(self.chain.run(pending))
        self.last_write_at = time.monotonic()
        if self.plugins is not None and ready:
            self.plugins.after_track(ready)
        if self.memory is not None:
            self.worker.set_bound(self.memory.update(ready))  # memory_limit in events of the measured size
        try:
            outcome = self.pipeline.process(ready)
        except BaseException as exc:
            for ticket in tickets:
                ticket.resolve(_first_line(exc))
            raise
        for ticket in tickets:
            if not outcome.committed:
                ticket.resolve(self.pipeline.counters.last_error or "the store did not take the batch")
            elif outcome.refused_ids and any(e.event_id in outcome.refused_ids for e in ticket.events):
                ticket.resolve("the store refused an event: " + (self.pipeline.counters.last_error or ""))
            else:
                ticket.resolve(None)
        if outcome.stored:
            self.exporters.on_committed(outcome.stored)
            if self.plugins is not None:
                self.plugins.after_store(outcome.stored)
        if not self.run_recorder.recorded and outcome.stored:
            # Once, after the first commit, so `telemetry stats --performance` sees this writer at once;
            # the scheduler's writer-metrics job keeps it current after that.
            self.run_recorder.record(first=True)

    # -- flushing and shutting down ------------------------------------------------------------------

    def losses(self) -> int:
        """Every event lost after it was accepted, for any reason (not the drops a processor chose)."""
        return sum(self.dropped().values())

    def dropped(self) -> dict[str, int]:
        """Every event lost so far, by reason (the health report's `dropped`)."""
        stats, counters = self.worker.stats, self.pipeline.counters
        return {
            "queue_full": stats.dropped_newest + stats.dropped_block_timeout,
            "oldest_evicted": stats.dropped_oldest,
            "memory_limit": stats.dropped_memory,
            "at_shutdown": stats.dropped_at_shutdown,
            "invalid": self.caller_invalid + sum(self.chain.invalid.values()),
            "rejected_by_store": counters.rejected,
            "store_failures": counters.lost_after_retries,
            "no_store": counters.no_store,
            "spool_full": counters.spool_full,
        }

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is committed; False on timeout or if anything was lost.

        "Lost" counts since the previous flush(): events dropped under backpressure, refused as
        invalid, refused by the store, or given up on after retries. Health says which.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self.worker.flush(timeout)
        # The stores' own flush (text index, WAL checkpoint) only when the writer caught up: if it is
        # still in a commit, that waits on a lock (another process's), and so would this, past timeout.
        # Within what is left of the timeout: a VACUUM or a text-index step of the scheduler can hold
        # the store, and another process its database, for longer.
        for provider in self.providers if done else ():
            try:
                if isinstance(provider, TimeBounded):
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    done = provider.flush_within(left) and done
                else:
                    provider.flush()
            except Exception as exc:
                logger.warning("telemetry store %s flush failed: %s", _provider_name(provider), exc)
        losses = self.losses()
        clean = losses <= self._losses_at_flush
        self._losses_at_flush = losses
        if not self.providers:
            return False
        return done and clean

    def shutdown(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued, stop the writer and the scheduler, close the stores; safe to call twice."""
        if self._shut_down:
            return True
        self._shut_down = True
        lifecycle.forget(self)
        self.scheduler.stop(timeout=0)  # no job starts from now on; the one running is waited for below
        finished = self.worker.flush(timeout)
        # Retries give up from here on: a batch the primary cannot take goes to the spool, if any.
        self.pipeline.stopping.set()
        finished = self.worker.shutdown(timeout) and finished
        # Closing (the scheduler's job in hand, the final metrics, the stores) within one more timeout:
        # a VACUUM or a text-index step waiting on another process is not waited for past it.
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        self.scheduler.stop(timeout=2.0 if deadline is None else min(2.0, left() or 0.0))
        # Events the sample step still holds for keep_errors: their sessions can no longer fail, so they
        # are discarded now, and counted as dropped by `sample` (not before: an error would have kept them).
        discard_held = getattr(self.chain.get("sample"), "discard_held", None)
        if callable(discard_held):
            discard_held()
        if self.plugins is not None:  # after the last commit (after_store seen), before the stores close
            self.plugins.shutdown()
        # Exporters get a bounded time to deliver what is committed; the rest goes out on the next start.
        self.exporters.shutdown(self.config.exporter_shutdown_timeout_s)
        self.run_recorder.record(final=True, timeout=left())
        # A forked child that never wrote still holds its parent's providers: not its to close.
        if not self._reopen_pending:
            for provider in self.providers:
                try:
                    if isinstance(provider, TimeBounded):
                        # A VACUUM or text-index step of the scheduler may still hold the store: not waited for.
                        finished = provider.shutdown_within(left()) and finished
                    else:
                        provider.shutdown()
                except Exception as exc:
                    logger.warning("telemetry store %s shutdown failed: %s", _provider_name(provider), exc)
            if self.pipeline.spool is not None:
                self.pipeline.spool.close()  # what is still spooled is replayed on the next start
        return finished

    @property
    def shut_down(self) -> bool:
        """Whether shutdown() ran."""
        return self._shut_down

    def elapsed_since_start(self) -> float:
        """Seconds since this runtime (or this forked child) started recording."""
        return time.monotonic() - self.run_recorder.started_monotonic


def _raw_notice(item: Any, reason: str) -> DropNotice:
    """A notice for raw input that never reached the chain: the id and type only, never its content."""
    if isinstance(item, Ticket):
        return DropNotice(reason, "queue")
    raw = item[0] if type(item) is tuple else item
    if isinstance(raw, TelemetryEvent):
        return DropNotice(reason, "queue", raw.event_id, raw.session_id, raw.event_type)
    if isinstance(raw, dict):
        kind = raw.get("event_type") or raw.get("eventType") or raw.get("type")
        sid = raw.get("session_id") or raw.get("sessionId")
        return DropNotice(reason, "queue", None, sid if isinstance(sid, str) else None,
                          kind if isinstance(kind, str) else None)
    return DropNotice(reason, "queue")
