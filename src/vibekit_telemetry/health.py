"""Health and performance reporting for a running Telemetry, and the writer metrics saved for other processes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from typing import TYPE_CHECKING, Any

from .events import now_ms
from .ids import uuid7
from .store.base import WriterRunRecorder as RunStore

if TYPE_CHECKING:
    from .runtime import Runtime

logger = logging.getLogger("vibekit_telemetry")


class WriterRunRecorder:
    """Saves this writer's counters in the primary store (writer_runs) for `telemetry stats --performance`.

    A scheduled job (every writer_stats_interval_s) and once more at shutdown. A writer that never
    wrote a batch (a CLI command that only reads) records nothing.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.errors = 0
        self.new_run()

    def new_run(self) -> None:
        """Start a new writer_runs record: at construction, and in a forked child (its own writer)."""
        self.run_id = uuid7()
        self.started_at = now_ms()
        self.started_monotonic = time.monotonic()
        self.recorded = False
        runtime = self.runtime
        # A forked child inherits the parent's counters: its run counts from here.
        pipeline = getattr(runtime, "pipeline", None)
        self.base = (pipeline.counters.written, runtime.losses()) if pipeline is not None else (0, 0)
        seen, kept = self.sampled()
        self.sampling_base = (seen, kept)  # a forked child's sample step goes on from the parent's counts

    def sampled(self) -> tuple[int, int]:
        """Sessions this process's `sample` step has seen and kept so far (0, 0 without sampling)."""
        chain = getattr(self.runtime, "chain", None)
        stats = getattr(chain.get("sample"), "stats", None) if chain is not None else None
        if not callable(stats):
            return 0, 0
        figures = stats()
        return int(figures["sessions_seen"]), int(figures["sessions_kept"])

    def live_sampling(self) -> dict[str, int]:
        """This run's sessions seen and kept (what its writer_runs row will say)."""
        seen, kept = self.sampled()
        return {"sessions_seen": seen - self.sampling_base[0], "sessions_kept": kept - self.sampling_base[1]}

    def record(self, *, final: bool = False, first: bool = False, timeout: float | None = None) -> None:
        """Save the counters now (first: right after this writer's first commit); never raises.

        timeout: how long the store may keep it waiting (shutdown's time left); the record is skipped past it.
        """
        runtime = self.runtime
        if runtime.reopen_pending:
            return  # a forked child that has not opened its own stores (nothing written)
        stats = runtime.worker.stats
        if not first and not stats.batches and not self.recorded:
            return
        try:
            store = next((p for p in runtime.providers if getattr(p, "supports_query", False)), None)
            if not isinstance(store, RunStore):
                return
            run = {
                "run_id": self.run_id, "service_name": runtime.config.service_name,
                "service_version": runtime.config.service_version, "host": socket.gethostname(),
                "pid": os.getpid(), "started_at": self.started_at, "updated_at": now_ms(),
                "events_written": runtime.pipeline.counters.written - self.base[0], "batches": stats.batches,
                "total_batch_ms": stats.total_batch_ms, "last_batch_ms": stats.last_batch_ms,
                "max_batch_ms": stats.max_batch_ms, "dropped": runtime.losses() - self.base[1],
                "queue_depth": runtime.worker.depth(), "queue_capacity": runtime.worker.capacity(),
                "plugins": plugins_json(runtime),
                **self.live_sampling(),
            }
            if timeout is None:
                store.record_writer_run(run)  # as stores written before the timeout existed take it
            else:
                store.record_writer_run(run, timeout)
            self.recorded = True
        except Exception as exc:  # metrics must never break the writer
            self.errors += 1
            log = logger.warning if self.errors == 1 else logger.debug
            log("telemetry writer metrics not recorded: %s", exc)


# What a writer records of each plugin (writer_runs.plugins): state and counts, for other processes.
RECORDED_PLUGIN_FIELDS = ("name", "version", "enabled", "calls", "errors", "timeouts", "skipped", "disabled",
                          "disabled_reason")


def plugins_json(runtime: Runtime) -> str | None:
    """The runtime's plugins as JSON text for writer_runs, or None without plugins."""
    plugins = runtime.plugins
    if plugins is None or not plugins.runners:
        return None
    return json.dumps([{k: s.get(k) for k in RECORDED_PLUGIN_FIELDS} for s in plugins.status()])


def plugin_issues(plugins: list[dict[str, Any]], where: str = "") -> list[str]:
    """Health issues of plugin statuses: each disabled plugin (`where` names the writer, if not this one)."""
    return [f"plugin {p.get('name')}{where}: disabled ({p.get('disabled') or p.get('disabled_reason')})"
            for p in plugins if p.get("enabled") is False]


def health_status(runtime: Runtime, truncated: int) -> dict[str, Any]:
    """The writer's, the queue's and the stores' health, with every drop counted."""
    worker, counters, config = runtime.worker, runtime.pipeline.counters, runtime.config
    stats = worker.stats
    dropped = runtime.dropped()
    stores: list[dict[str, Any]] = []
    for provider in runtime.providers:
        health = getattr(provider, "health", None)
        try:
            stores.append(health() if callable(health) else {"name": getattr(provider, "name", "custom")})
        except Exception as exc:
            stores.append({"name": getattr(provider, "name", "?"), "reachable": False, "error": str(exc)})
    healthy_store = bool(runtime.providers) and all(s.get("reachable", True) for s in stores)
    status = "healthy"
    if not worker.is_alive() or not healthy_store:
        status = "unhealthy"
    elif sum(dropped.values()) or worker.depth() > 0.8 * worker.capacity():
        status = "degraded"
    batches = stats.batches or 1
    chain = runtime.chain
    report = {
        "status": status,
        "service": {"name": config.service_name, "version": config.service_version},
        "queue": {"depth": worker.depth(), "capacity": worker.capacity(), "policy": config.backpressure},
        "writer": {"alive": worker.is_alive(), "batches": stats.batches,
                   "events_processed": stats.processed, "last_batch_ms": round(stats.last_batch_ms, 3),
                   "avg_batch_ms": round(stats.total_batch_ms / batches, 3),
                   "max_batch_ms": round(stats.max_batch_ms, 3), "batch_errors": stats.batch_errors,
                   "metrics_record_errors": runtime.run_recorder.errors,
                   "process": _writer_process(runtime)},
        "events": {"submitted": stats.processed + worker.depth(), "written": counters.written,
                   "duplicates": counters.duplicates, "truncated": truncated,
                   "retries": counters.retries, "store_errors": counters.store_errors},
        "chain": {"steps": chain.names, "dropped": dict(chain.dropped), "invalid": dict(chain.invalid)},
        "dropped": dropped,
        "dropped_total": sum(dropped.values()),
        "rejected_reasons": dict(counters.rejected_reasons),
        "stores": stores,
        "store_error": runtime.store_error,
        "last_error": counters.last_error,
        "scheduler": runtime.scheduler.status(),
        "exporters": runtime.exporters.status(),
    }
    from .reliability import health_components

    health_components(runtime, report)  # spool, breaker, memory, disk, sampling; `healthy` and `issues`
    _plugin_health(runtime, report)
    return report


def _plugin_health(runtime: Runtime, report: dict[str, Any]) -> None:
    """Each plugin's state and counts; a disabled or stuck plugin is an issue (tracking goes on: degraded)."""
    plugins = runtime.plugins
    report["plugins"] = plugins.status() if plugins is not None else []
    issues = plugins.issues() if plugins is not None else []
    if issues:
        report["issues"] = [*report["issues"], *issues]
        report["healthy"] = False
        if report["status"] == "healthy":
            report["status"] = "degraded"


def performance_metrics(runtime: Runtime | None) -> dict[str, Any]:
    """Seed 003's writer metrics: buffered events, events written, flush counts and times."""
    if runtime is None:
        return {"active_buffers": 0, "total_buffered_events": 0, "total_events_written": 0, "flushes": 0,
                "average_flush_time_ms": 0.0, "last_flush_time_ms": 0.0, "dropped_events": 0}
    stats = runtime.worker.stats
    return {
        "active_buffers": 1 if runtime.worker.depth() else 0,
        "total_buffered_events": runtime.worker.depth(),
        "total_events_written": runtime.pipeline.counters.written,
        "flushes": stats.batches,
        "average_flush_time_ms": round(stats.total_batch_ms / stats.batches, 3) if stats.batches else 0.0,
        "last_flush_time_ms": round(stats.last_batch_ms, 3),
        "dropped_events": runtime.losses(),  # counters only: no store I/O
    }


def health_summary(health: dict[str, Any]) -> dict[str, Any]:
    """Seed 003's health summary: database reachable, buffer below capacity, free disk space in MB."""
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


def _writer_process(runtime: Runtime) -> dict[str, Any] | None:
    """The child process that commits (writer_process): its pid and how often it was restarted; None if none."""
    remote = runtime.writer_process
    return None if remote is None else {"pid": remote.pid, "restarts": remote.restarts}
