"""The periodic jobs of a Runtime, run by its scheduler (scheduler.py) between the writer's commits.

Retention, store upkeep (PostgreSQL partitions, totals deltas), the text index catching up behind the
writer, writer metrics, spool replay, resource checks, privacy retention, analytics evaluation and
scheduled exports. Shared jobs run in one replica at a time; jobs about this process run in each.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .store.base import JobLeasing, Maintainable, Upkeepable

if TYPE_CHECKING:
    from .runtime import Runtime

# The text-index job works in steps of this many rows (~0.08 s each at the measured ~26,000 rows/s), for
# at most this long per run: it keeps up with the writer while a commit waits for one step at most.
_TEXT_INDEX_STEP = 2_000
_TEXT_INDEX_BUDGET_S = 2.0
# While the writer is busy the text index waits, so a burst is committed (and acknowledged) at full
# speed; the index catches up when the writer idles, or at once past this many unindexed rows (a
# `contains` search scans the unindexed rows, so the wait must stay bounded).
_TEXT_INDEX_MAX_BACKLOG = 100_000
_WRITER_BUSY_S = 0.5


def schedule_jobs(runtime: Runtime) -> None:
    """Register every periodic job of runtime on its scheduler (which the runtime then starts)."""
    config, scheduler = runtime.config, runtime.scheduler
    primary = runtime.providers[0] if runtime.providers else None
    if isinstance(primary, JobLeasing):  # replicas on one database: shared jobs run in one of them
        scheduler.lease = primary.job_lease
    scheduler.every("retention", config.maintenance_interval_s, lambda: retention(runtime))
    # The jobs below are about this process (its writer, its spool, its memory): every replica runs them.
    scheduler.every("text-index", 1.0, lambda: index_text(runtime), per_process=True)
    # SQLite: planner statistics refreshed when a table is new to them or doubled or halved since
    # (bounded ANALYZE); PostgreSQL: events partitions ahead, writers' totals deltas folded.
    scheduler.every("store-upkeep", config.maintenance_interval_s, lambda: upkeep(runtime), first_in=1.0)
    scheduler.every("writer-metrics", config.writer_stats_interval_s, runtime.run_recorder.record,
                    per_process=True)
    from .reliability import replay_job

    scheduler.every("spool-replay", 1.0, replay_job(runtime), per_process=True)
    scheduler.every("resources", config.reliability.check_interval_s, runtime.resources.check, per_process=True)
    privacy = config.security.retention  # privacy (issue 12): anonymize_after / delete_after
    if privacy.anonymize_after or privacy.delete_after:
        from .privacy.retention import apply_retention

        scheduler.every("privacy-retention", config.maintenance_interval_s,
                        lambda: apply_retention(runtime.store, privacy), first_in=1.0)
    if config.analytics.enabled:
        runtime.enable_analytics(schedule=True)
    if config.exports.schedules:  # scheduled exports (issue 11), run by this runtime's scheduler
        from .export.schedule import make_schedule

        for entry in config.exports.schedules:
            runtime.exports().add(make_schedule(**entry))


def _maintainable(runtime: Runtime) -> list[Maintainable]:
    return [p for p in runtime.providers if isinstance(p, Maintainable)]


def retention(runtime: Runtime) -> None:
    """Apply prune_days and max_size_mb on stores that keep them (a scheduled job, never inside a write)."""
    runtime.ensure_process()
    for store in _maintainable(runtime):
        store.prune()


def upkeep(runtime: Runtime) -> None:
    """Schema upkeep of the stores that need it (a scheduled job)."""
    runtime.ensure_process()
    for store in runtime.providers:
        if isinstance(store, Upkeepable):
            store.upkeep()


def index_text(runtime: Runtime) -> None:
    """Catch the text index up behind the writer (a scheduled job)."""
    if runtime.reopen_pending:
        return
    busy = (runtime.worker.depth() > 0
            or time.monotonic() - runtime.last_write_at < _WRITER_BUSY_S)
    for store in _maintainable(runtime):
        if busy and store.unindexed_rows() < _TEXT_INDEX_MAX_BACKLOG:
            continue
        # Small steps, the store's lock released between them, so a commit (and the HTTP client
        # waiting for it) never waits behind more than one step; a time budget per run.
        deadline = time.monotonic() + _TEXT_INDEX_BUDGET_S
        while store.index_text(_TEXT_INDEX_STEP) >= _TEXT_INDEX_STEP and time.monotonic() < deadline:
            time.sleep(0.002)  # Python locks are not fair: step aside so a waiting commit gets the lock
