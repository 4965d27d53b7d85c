"""Reliability wiring for a Runtime: the spool and breaker of a remote primary, the rate limit step,
resource checks (memory, disk) and the health report's components and issues."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_DB_PATH, ReliabilityConfig, TelemetryConfig
from .events import TelemetryEvent

if TYPE_CHECKING:
    from .limits import MemoryBudget
    from .pipeline import WritePipeline
    from .processing.sampling import Sample
    from .runtime import Runtime

logger = logging.getLogger("vibekit_telemetry")

# Primary stores on this host: a spool beside them would share their fate, so they get none.
_LOCAL_STORES = frozenset({"sqlite", "memory"})


def is_remote(provider: object) -> bool:
    """Return whether a store lives elsewhere (PostgreSQL, a custom provider): it may go away."""
    return str(getattr(provider, "name", "custom")) not in _LOCAL_STORES


def default_spool_path(provider: object) -> str:
    """A spool file per remote store, next to the default database, so restarts find their backlog."""
    where = getattr(provider, "where", None)
    location = str(where() if callable(where) else getattr(provider, "name", "custom"))
    digest = hashlib.sha256(location.encode()).hexdigest()[:12]
    return str(Path(DEFAULT_DB_PATH).parent / f"spool-{digest}.db")


def configure_pipeline(pipeline: WritePipeline, config: TelemetryConfig) -> None:
    """Give the pipeline its retry backoff, and the breaker and spool when the primary is remote."""
    from .exporters.backoff import Backoff
    from .exporters.breaker import CircuitBreaker
    from .spool import Spool

    rel = config.reliability
    retry = rel.retry
    if "retry" in rel.model_fields_set:  # seed 001's block overrides the flat retry_attempts / retry_delay_ms
        pipeline.retry_attempts = retry.max_attempts if retry.enabled else 0
        pipeline.backoff = Backoff(retry.base_ms / 1000, max(retry.max_ms, retry.base_ms) / 1000,
                                   (lambda: 1.0) if not retry.jitter else __import__("random").random,
                                   linear=retry.backoff == "linear")
    directory = _file_store_directory(pipeline.providers[0]) if pipeline.providers else None
    if directory is not None and rel.min_free_disk_mb > 0:
        from .limits import DiskGuard

        pipeline.disk_guard = DiskGuard(directory, rel.min_free_disk_mb, rel.disk_check_interval_ms / 1000)
    if not pipeline.providers or not is_remote(pipeline.providers[0]):
        return
    breaker_cfg = rel.circuit_breaker
    pipeline.breaker = CircuitBreaker(breaker_cfg.threshold if breaker_cfg.enabled else 1_000_000_000,
                                      breaker_cfg.timeout / 1000, half_open_probes=breaker_cfg.half_open_probes)
    if rel.buffer_on_error:
        path = (rel.spool_path or default_spool_path(pipeline.providers[0])) if rel.persist_buffer else None
        pipeline.spool = Spool(path, rel.buffer_size)
        if path is not None and rel.min_free_disk_mb > 0:
            from .limits import DiskGuard

            pipeline.spool_guard = DiskGuard(os.path.dirname(os.path.abspath(path)), rel.min_free_disk_mb,
                                             rel.disk_check_interval_ms / 1000)
        pipeline.replay_batch = config.max_batch_size


class TrackRateLimit:
    """The chain's `rate_limit` step: a token bucket per category (seed 001 `reliability.rateLimit`).

    A category past max_requests per window has its events dropped (counted under `rate_limit`), so one
    runaway agent cannot starve the others or the store.
    """

    name = "rate_limit"

    def __init__(self, max_requests: int, window_ms: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max_requests)
        self.rate = max_requests / (window_ms / 1000)  # tokens per second
        self._clock = clock
        self._buckets: dict[str | None, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: a fresh lock."""
        self._lock = threading.Lock()

    def process(self, event: TelemetryEvent) -> TelemetryEvent | None:
        """Return the event when its category has a token left, else None."""
        now = self._clock()
        key = event.category
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return None
            self._buckets[key] = (tokens - 1.0, now)
        return event


def rss_bytes() -> int | None:
    """Resident memory of this process, from /proc (None where there is no /proc)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _file_store_directory(provider: object) -> str | None:
    """The directory of a SQLite store's file (None for other stores and in-memory databases)."""
    if getattr(provider, "name", None) == "sqlite":
        where = getattr(provider, "where", None)
        location = str(where()) if callable(where) else None
        if location and location != ":memory:":
            return os.path.dirname(os.path.abspath(location))
    return None


def _store_directory(runtime: Runtime) -> str | None:
    for provider in runtime.providers:
        directory = _file_store_directory(provider)
        if directory is not None:
            return directory
    return None


def enforce_memory_limit(runtime: Runtime) -> MemoryBudget:
    """Split memory_limit between the writer queue, the sampler's held events and sessions seen, and
    bus-fed exporters' queues.

    The writer queue's share becomes its bound in events (and tells the pipeline when to spill to the
    spool); the sample step and each bus-fed exporter get a bound in bytes (limits.MemoryShares).
    """
    from .limits import MemoryBudget, MemoryShares

    limit = runtime.config.reliability.memory_limit
    assert limit is not None
    sample = _sampling_step(runtime)
    holding = sample if sample is not None and sample.keep_errors else None
    shares = MemoryShares.split(limit, sampler=holding is not None, bus_exporters=len(runtime.exporters.bus_feeds()),
                                seen=sample is not None)
    if holding is not None:
        holding.max_held_bytes = shares.sampler
    if sample is not None:
        sample.max_seen_bytes = shares.seen
    if shares.exporters:
        runtime.exporters.bound_memory(shares.exporters)
    worker = runtime.worker
    budget = MemoryBudget(shares.writer, worker.capacity(), shares=shares)
    worker.set_bound(budget.capacity())
    # Half the writer's share queued: stop waiting on a remote primary, move batches to the spool (on
    # disk) so the queue drains before producers meet the bound.
    runtime.pipeline.spill_now = lambda: budget.used_bytes(worker.depth()) * 2 >= shares.writer
    return budget


def _sampling_step(runtime: Runtime) -> Sample | None:
    """The chain's sample step when it samples (a rate below 1: it remembers sessions seen), else None."""
    from .processing.sampling import Sample

    sample = runtime.chain.get("sample")
    if isinstance(sample, Sample) and sample.sample_rate < 1.0:
        return sample
    return None


def held_bytes(runtime: Runtime) -> tuple[int, int]:
    """The estimated memory of the sampler's held events and of the bus-fed exporters' queues."""
    sample = runtime.chain.get("sample")
    return int(getattr(sample, "held_bytes", 0) or 0), runtime.exporters.queued_bytes()


def seen_bytes(runtime: Runtime) -> int:
    """The estimated memory of the sample step's sessions seen (0 without sampling)."""
    return int(getattr(runtime.chain.get("sample"), "seen_bytes", 0) or 0)


class ResourceMonitor:
    """A scheduled job: memory against memory_limit (`memory:high`), free disk next to a file store."""

    def __init__(self, runtime: Runtime, config: ReliabilityConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.memory_high = False
        self.free_disk_mb: float | None = None
        self.rss: int | None = None

    def queue_bytes(self) -> int | None:
        """The estimated bytes the writer queue holds (None without memory_limit)."""
        budget = self.runtime.memory
        return budget.used_bytes(self.runtime.worker.depth()) if budget is not None else None

    def check(self) -> None:
        """Measure once; emit `memory:high` when memory crosses the limit (once per crossing).

        Crossing: resident memory at the limit, or the queue at 90 % of it (then producers are about to
        meet the queue's memory bound).
        """
        self.rss = rss_bytes()
        limit = self.config.memory_limit
        budget = self.runtime.memory
        if limit and budget is not None:
            queued = self.queue_bytes() or 0
            held, exporters = held_bytes(self.runtime)
            seen = seen_bytes(self.runtime)
            # Crossing: resident memory at the limit, the writer queue at 90 % of its share, or everything
            # held (queue, sampler, exporters) at 90 % of the limit.
            high = ((self.rss is not None and self.rss >= limit) or queued >= 0.9 * budget.limit_bytes
                    or queued + held + exporters + seen >= 0.9 * limit)
            used = max(self.rss or 0, queued + held + exporters + seen)
            if high and not self.memory_high and self.runtime.emitter.has("memory:high"):
                self.runtime.emitter.emit("memory:high", {"used": used, "limit": limit,
                                                          "percentage": round(100 * used / limit, 1),
                                                          "rss": self.rss, "queue_bytes": queued,
                                                          "sampler_bytes": held, "exporter_bytes": exporters})
            self.memory_high = high
        directory = _store_directory(self.runtime)
        try:
            self.free_disk_mb = round(shutil.disk_usage(directory).free / 1_048_576, 1) if directory else None
        except OSError:
            self.free_disk_mb = None


def stats_sampling(store: object, runtime: Runtime | None, since_ms: int | None) -> dict[str, Any]:
    """The `sampling` part of get_stats: sessions seen and kept by every writer, and the kept fraction.

    Read from writer_runs (rows updated since `since_ms`, the newest 10,000), so a process that writes
    nothing (the CLI, a dashboard) sees what the writers sampled; a running writer adds its live counts.
    """
    from .processing.sampling import kept_fraction
    from .store.base import WriterRunRecorder

    runs: list[dict[str, Any]] = []
    if isinstance(store, WriterRunRecorder):
        try:
            runs = store.writer_runs(since_ms=since_ms, limit=10_000)
        except Exception as exc:  # stats must not fail because the metrics table cannot be read
            logger.debug("telemetry writer_runs not read for sampling: %s", exc)
    recorder = runtime.run_recorder if runtime is not None else None
    summary = kept_fraction(runs, recorder.live_sampling() if recorder is not None else None,
                            recorder.run_id if recorder is not None else None)
    if runtime is not None:
        summary["sample_rate"], summary["keep_errors"] = runtime.config.sample_rate, runtime.config.keep_errors
    return summary


def replay_job(runtime: Runtime) -> Callable[[], None]:
    """A scheduled job: when the spool holds events and the writer is idle, wake it to replay them."""
    def nudge() -> None:
        spool = runtime.pipeline.spool
        if spool is not None and spool.depth() and not runtime.worker.depth():
            # An empty batch through the public seam: the writer runs the pipeline, which replays first.
            runtime.submit_processed([], urgent=True)
    return nudge


def health_components(runtime: Runtime, report: dict[str, Any]) -> None:
    """Add the reliability components, the single `healthy` flag and the `issues` list to a health report."""
    pipeline, monitor = runtime.pipeline, runtime.resources
    monitor.check()
    issues: list[str] = []
    breaker = pipeline.breaker
    primary: dict[str, Any] = {"breaker": None}
    if breaker is not None:
        primary["breaker"] = {"state": breaker.state, "times_opened": breaker.times_opened,
                              "threshold": breaker.failure_threshold, "timeout_s": breaker.open_timeout_s}
        if breaker.state != "closed":
            issues.append(f"primary store: circuit breaker {breaker.state}")
    report["primary"] = primary
    report["spool"] = pipeline.spool.status() if pipeline.spool is not None else None
    if pipeline.spool is not None and pipeline.spool.depth():
        issues.append(f"spool: {pipeline.spool.depth()} events wait for the primary store")
    counters = pipeline.counters
    report["last_commit"] = {"at": counters.last_commit_at, "ms": round(counters.last_commit_ms, 3)}
    held, exporters = held_bytes(runtime)
    shares = runtime.memory.shares if runtime.memory is not None else None
    report["memory"] = {"rss_bytes": monitor.rss, "limit": runtime.config.reliability.memory_limit,
                        "high": monitor.memory_high, "queue_bytes": monitor.queue_bytes(),
                        "queue_bound": runtime.worker.capacity(), "spilled": counters.spilled,
                        "sampler_bytes": held, "exporter_bytes": exporters, "seen_bytes": seen_bytes(runtime),
                        # memory_limit's split in bytes (None without memory_limit): limits.MemoryShares
                        "shares": {"writer": shares.writer, "sampler": shares.sampler,
                                   "exporters": shares.exporters, "seen": shares.seen}
                        if shares is not None else None}
    guard = pipeline.disk_guard
    report["disk"] = {"free_mb": monitor.free_disk_mb, "min_free_mb": runtime.config.reliability.min_free_disk_mb,
                      "full": pipeline.disk_full, "held": guard.holds if guard is not None else 0}
    sample = runtime.chain.get("sample")
    stats = getattr(sample, "stats", None)
    report["sampling"] = stats() if callable(stats) else None
    report["dropped"]["spool_full"] = counters.spool_full
    if pipeline.disk_full:
        issues.append(f"disk full: {pipeline.disk_full}")
    elif monitor.free_disk_mb is not None and monitor.free_disk_mb < runtime.config.reliability.min_free_disk_mb:
        issues.append(f"disk: {monitor.free_disk_mb} MB free next to the store")
    if monitor.memory_high:
        issues.append(f"memory: {monitor.rss} bytes resident, {monitor.queue_bytes() or 0} queued; "
                      f"memory_limit is {runtime.config.reliability.memory_limit}")
    if not report["writer"]["alive"]:
        issues.append("writer: the writer thread is not running")
    for store in report["stores"]:
        if not store.get("reachable", True):
            issues.append(f"store {store.get('name')}: unreachable ({store.get('error', '')})".rstrip(" ()"))
    if report.get("store_error"):
        issues.append(f"store: {report['store_error']}")
    for exporter in _exporter_list(report.get("exporters")):
        state = exporter.get("breaker") if isinstance(exporter, dict) else None
        state = state.get("state") if isinstance(state, dict) else state
        if state not in (None, "closed"):
            issues.append(f"exporter {exporter.get('name')}: circuit breaker {state}")
    dropped_total = sum(report["dropped"].values())
    report["dropped_total"] = dropped_total
    if dropped_total:
        reasons = ", ".join(f"{k}={v}" for k, v in report["dropped"].items() if v)
        issues.append(f"dropped events: {reasons}")
    queue = report["queue"]
    if queue["depth"] > 0.8 * queue["capacity"]:
        issues.append(f"queue: {queue['depth']} of {queue['capacity']} used")
    report["issues"] = issues
    report["healthy"] = not issues
    if pipeline.disk_full or (breaker is not None and breaker.state != "closed"):
        report["status"] = "unhealthy" if pipeline.disk_full else "degraded"
    elif issues and report["status"] == "healthy":
        report["status"] = "degraded"


def _exporter_list(status: Any) -> list[Any]:
    if isinstance(status, list):
        return status
    if isinstance(status, dict):
        inner = status.get("exporters", status)
        return list(inner.values()) if isinstance(inner, dict) else list(inner) if isinstance(inner, list) else []
    return []


def local_spools(directory: str | None = None) -> list[dict[str, Any]]:
    """Spool files next to the default database and how many events each holds (for `telemetry health`)."""
    import sqlite3

    found: list[dict[str, Any]] = []
    for path in sorted(Path(directory or Path(DEFAULT_DB_PATH).parent).glob("spool-*.db")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as conn:
                depth = int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
        except sqlite3.Error as exc:
            found.append({"path": str(path), "depth": None, "error": str(exc)})
            continue
        found.append({"path": str(path), "depth": depth})
    return found


def cli_health_extras(report: dict[str, Any]) -> dict[str, Any]:
    """Add local spools, the `issues` list and the `healthy` flag to `telemetry health`'s report."""
    report["spools"] = local_spools()
    issues: list[str] = []
    store = report.get("store", {})
    if not store.get("reachable", True):
        issues.append(f"store {store.get('name')}: unreachable")
    dropped = report.get("writers", {}).get("dropped_last_24h", 0)
    if dropped:
        issues.append(f"writers dropped {dropped} events in the last 24 h")
    for spool in report["spools"]:
        if spool.get("depth"):
            issues.append(f"spool {spool['path']}: {spool['depth']} events wait for the primary store")
    report["issues"], report["healthy"] = issues, not issues
    if issues and report.get("status") == "healthy":
        report["status"] = "degraded"
    return report
