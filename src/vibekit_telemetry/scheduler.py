"""One thread for periodic work (retention, text index catch-up, writer metrics, later analytics and exports).

Nothing periodic runs inside a write batch: jobs run here, between the writer's commits, and take the
store's own locks like any other caller.

Replicas sharing one database (several `telemetry api` on PostgreSQL) would each run every job:
retention three times, an export file per replica per period. So a job is *shared* by default: when
a lease function is set (the Runtime sets the primary store's `job_lease`), the job runs only in the
replica holding its lease, and the others count it as skipped. Jobs about this process alone (its
writer metrics, its spool, its memory) are registered with `per_process=True` and always run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import lifecycle

logger = logging.getLogger("vibekit_telemetry")


@dataclass(slots=True)
class Job:
    """A named function run every `interval_s` seconds."""

    name: str
    interval_s: float
    run: Callable[[], object]
    next_at: float
    runs: int = 0
    failures: int = 0
    last_error: str | None = None
    last_ms: float = 0.0
    # Runs in this process only (its own writer, spool, memory), never behind a replica lease.
    per_process: bool = False
    skipped: int = 0  # due while another replica held the lease
    leader: bool | None = None  # whether this replica held the lease at the last due time


class Scheduler:
    """Run jobs on one daemon thread at their intervals; a failing job is logged and counted, never fatal."""

    def __init__(self, name: str = "vibekit-telemetry-scheduler") -> None:
        self._name = name
        self._jobs: dict[str, Job] = {}
        # name -> whether this process holds the shared job's lease now (None: no replicas, run it).
        self.lease: Callable[[str], bool | None] | None = None
        self._setup()
        lifecycle.on_fork(self)

    def _setup(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._stopped = False
        self._thread: threading.Thread | None = None

    def every(self, name: str, interval_s: float, run: Callable[[], object], *,
              first_in: float | None = None, per_process: bool = False) -> None:
        """Run `run` every interval_s seconds (first after first_in seconds, default one interval).

        per_process: run in every replica (work about this process); else only in the lease holder's.
        """
        if interval_s <= 0:
            raise ValueError(f"interval_s: expected a number > 0, got {interval_s!r}")
        start = time.monotonic() + (interval_s if first_in is None else first_in)
        with self._cond:
            self._jobs[name] = Job(name, interval_s, run, start, per_process=per_process)
            self._cond.notify()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._cond:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def run_now(self, name: str) -> None:
        """Run one job on the calling thread now (maintenance commands, tests)."""
        self._run(self._jobs[name])

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread after the job it is running, if any."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """In a forked child: new lock, new thread (the parent's do not exist here)."""
        was_running = self._thread is not None and not self._stopped
        self._setup()
        if was_running:
            self.start()

    def status(self) -> dict[str, dict[str, object]]:
        """Each job's runs, failures, last error and last duration."""
        return {job.name: {"interval_s": job.interval_s, "runs": job.runs, "failures": job.failures,
                           "last_error": job.last_error, "last_ms": round(job.last_ms, 3),
                           **({} if job.leader is None else {"leader": job.leader, "skipped": job.skipped})}
                for job in list(self._jobs.values())}

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [job for job in self._jobs.values() if job.next_at <= now]
                if not due:
                    wait = min((job.next_at for job in self._jobs.values()), default=now + 60) - now
                    self._cond.wait(max(0.01, wait))
                    continue
            for job in due:
                if self._leased(job):
                    self._run(job)
                job.next_at = time.monotonic() + job.interval_s

    def _leased(self, job: Job) -> bool:
        """Whether this replica runs the job now: per-process, no replicas, or it holds the lease."""
        lease = self.lease
        if lease is None or job.per_process:
            return True
        try:
            held = lease(job.name)
        except Exception as exc:  # the database is unreachable: the job would fail anyway
            job.leader = False
            job.failures += 1
            job.last_error = f"lease: {type(exc).__name__}: {exc}"
            logger.debug("telemetry job %s: cannot take its lease: %s", job.name, exc)
            return False
        if held is None:  # a store on one host: no replicas to share with
            return True
        job.leader = held
        if not held:
            job.skipped += 1
        return held

    @staticmethod
    def _run(job: Job) -> None:
        started = time.perf_counter()
        try:
            job.run()
        except Exception as exc:
            job.failures += 1
            job.last_error = f"{type(exc).__name__}: {exc}"
            log = logger.warning if job.failures == 1 else logger.debug
            log("telemetry job %s failed: %s", job.name, exc)
        finally:
            job.runs += 1
            job.last_ms = (time.perf_counter() - started) * 1000
