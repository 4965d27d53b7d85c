"""Upkeep of the SQL store: clean (delete with totals corrected), prune, compact, reindex, check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, case, delete, exists, func, select, true, update
from sqlalchemy.sql.elements import ColumnElement

from ...events import now_ms
from .._batch import (
    RollupDelta,
    RollupKey,
    SessionRollupKey,
    TotalsDelta,
    add_event_rollups,
    add_session_buckets,
    add_session_state,
    resolve_older_than,
)
from ..schema import events, rollups, session_rollups, session_totals, sessions, writer_runs
from . import changelog
from .text_index import TextIndex
from .writer import SESSION_COLUMNS, TOTAL_COLUMNS, chunks

if TYPE_CHECKING:
    from .store import SQLStore

_MINUTE = 60_000


def clean(store: SQLStore, *, older_than_ms: int | None = None, session_ids: Sequence[str] = (),
          categories: Sequence[str] = (), also: Sequence[ColumnElement[bool]] = ()) -> int:
    """Delete matching events (all when no criterion is given), sessions left empty, and their counts.

    Counts, errors and duration sums in the rollups are corrected with the same delta function the
    writer adds with (sign -1); their per-bucket min and max are not (they stay as bounds of what arrived).
    `also`: further conditions on events (retention's "in the default partition").
    """
    e = events.c
    cutoff = resolve_older_than(older_than_ms)
    where: list[ColumnElement[bool]] = [true(), *also]
    if cutoff is not None:
        where.append(e.timestamp < cutoff)
    if session_ids:
        where.append(e.session_id.in_(list(session_ids)))
    if categories:
        where.append(e.category.in_(list(categories)))
    with store.maintenance_transaction() as conn:
        return _remove(store, conn, where, lambda: store.sql.delete_events(conn, where))


def _remove(store: SQLStore, conn: Connection, where: list[ColumnElement[bool]],
            remove: Callable[[], int]) -> int:
    """Correct the aggregates for the events matching `where`, remove them with `remove`, drop emptied sessions."""
    e = events.c
    touched = list(conn.execute(select(e.session_id).distinct().where(
        *where, e.session_id.is_not(None))).scalars())
    # One grouped read at minute resolution, added up here into every period and the totals.
    rollup_deltas: dict[RollupKey, RollupDelta] = {}
    totals: dict[str, TotalsDelta] = {}
    buckets: dict[SessionRollupKey, TotalsDelta] = {}
    keys = ((e.timestamp // _MINUTE) * _MINUTE, e.category, func.coalesce(e.action, ""), e.event_type)
    for start, cat, act, kind, n, errs, dsum, dcount in conn.execute(select(
            *keys, func.count(), func.sum(case((e.event_type == "error", 1), else_=0)),
            func.coalesce(func.sum(e.duration), 0.0), func.count(e.duration))
            .where(*where).group_by(*keys)):
        add_event_rollups(rollup_deltas, totals, int(start), cat or "", act, kind,
                          count=int(n), errors=int(errs or 0), duration_sum=float(dsum or 0.0),
                          duration_count=int(dcount), sign=-1)
    # Removed before any aggregate row is locked: dropping a partition waits for the writers in flight,
    # which may be about to upsert those rows; the other way round the two would deadlock.
    removed = remove()
    _apply_rollups(conn, rollup_deltas)
    sc = sessions.c
    for chunk in chunks(touched):
        empty = [sc.id.in_(chunk), ~exists().where(e.session_id == sc.id)]
        for cat, status, end_time, duration, start_time in conn.execute(
                select(sc.category, sc.status, sc.end_time, sc.duration, sc.start_time).where(*empty)):
            state = (cat, status, end_time, duration)
            add_session_state(totals, state, -1)
            add_session_buckets(buckets, state, int(start_time), -1)
        conn.execute(delete(sessions).where(*empty))
    store.sql.fold_totals(conn)  # so the rows _apply_totals corrects hold every writer's counts
    _apply_totals(conn, totals)
    _apply_session_rollups(conn, buckets)
    if store._text is not None:
        # Deleting the newest rows frees their rowids for reuse: keep the watermark at most
        # max(rowid), so rows that take those rowids again are indexed.
        conn.exec_driver_sql(TextIndex.CLAMP_AFTER_DELETE)
    changelog.clamp_cursors(conn, store.sql)  # the same for exporters' cursors
    return int(removed)


def _apply_rollups(conn: Connection, deltas: dict[RollupKey, RollupDelta]) -> None:
    """Add (negative) deltas to existing rollup buckets; drop buckets left empty."""
    if not deltas:
        return
    r = rollups.c
    conn.execute(update(rollups).where(
        r.period == bindparam("b_period"), r.bucket_start == bindparam("b_start"),
        r.category == bindparam("b_category"), r.action == bindparam("b_action"),
        r.event_type == bindparam("b_kind")).values(
        count=r.count + bindparam("b_n"), error_count=r.error_count + bindparam("b_errs"),
        duration_sum=r.duration_sum + bindparam("b_dsum"),
        duration_count=r.duration_count + bindparam("b_dcount")),
        [{"b_period": k[0], "b_start": k[1], "b_category": k[2], "b_action": k[3], "b_kind": k[4],
          "b_n": v.count, "b_errs": v.error_count, "b_dsum": v.duration_sum, "b_dcount": v.duration_count}
         for k, v in deltas.items()])
    conn.execute(delete(rollups).where(r.count <= 0))


def _apply_totals(conn: Connection, totals: dict[str, TotalsDelta]) -> None:
    """Add (negative) deltas to session_totals rows that exist; drop rows left at zero."""
    rows = [{"b_category": cat, **{"b_" + c: getattr(v, c) for c in TOTAL_COLUMNS}}
            for cat, v in totals.items() if not v.is_zero()]
    if not rows:
        return
    t = session_totals.c
    conn.execute(update(session_totals).where(t.category == bindparam("b_category")).values(
        {c: t[c] + bindparam("b_" + c) for c in TOTAL_COLUMNS}), rows)
    conn.execute(delete(session_totals).where(t.events <= 0, t.sessions <= 0))


def _apply_session_rollups(conn: Connection, buckets: dict[SessionRollupKey, TotalsDelta]) -> None:
    """Add (negative) deltas to session_rollups buckets; drop buckets left without sessions."""
    rows = [{"b_period": p, "b_start": b, "b_category": cat, **{"b_" + c: getattr(v, c) for c in SESSION_COLUMNS}}
            for (p, b, cat), v in buckets.items() if not v.is_zero()]
    if not rows:
        return
    r = session_rollups.c
    conn.execute(update(session_rollups).where(
        r.period == bindparam("b_period"), r.bucket_start == bindparam("b_start"),
        r.category == bindparam("b_category")).values(
        {c: r[c] + bindparam("b_" + c) for c in SESSION_COLUMNS}), rows)
    conn.execute(delete(session_rollups).where(r.sessions <= 0))


def prune(store: SQLStore) -> int:
    """Apply prune_days and max_size_mb: delete the oldest events, then VACUUM; return the count."""
    removed = 0
    if store.prune_days is not None:
        cutoff = now_ms() - int(store.prune_days * 86_400_000)
        removed += drop_partitions(store, cutoff) if store.sql.partitioned else store.clean(older_than_ms=cutoff)
        with store.maintenance_transaction() as conn:
            conn.execute(delete(writer_runs).where(writer_runs.c.updated_at < cutoff))
    if store.max_size_mb is None:
        return removed
    limit = int(store.max_size_mb * 1024 * 1024)
    # Aim 10 % under the limit so the next batches do not trigger another prune at once.
    target = int(0.9 * limit)
    for _ in range(10):
        if store.size_bytes() <= limit:
            break
        used = store.sql.used_bytes(store.engine, store.path)
        if used > target:
            with store.engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(events)).scalar_one()
                if not total:
                    break
                n = max(1, min(total, int(total * (used - target) / used) + 1))
                cutoff = conn.execute(select(events.c.timestamp).order_by(events.c.timestamp)
                                      .offset(n - 1).limit(1)).scalar_one()
            removed += store.clean(older_than_ms=cutoff + 1)
        store.compact()
        if not store.sql.vacuum_shrinks:
            break  # one pass by row share: the files would not shrink further
    return removed


def drop_partitions(store: SQLStore, cutoff: int) -> int:
    """Retention on a partitioned events table: drop every partition that ended before cutoff.

    Aggregates are corrected as clean() does, read from the partition before it goes. Events are kept
    until their whole partition is past the cutoff (a day or a week late at most); only the default
    partition (far-past or far-future timestamps, normally empty) has rows deleted one by one.
    """
    from .partitions import drop_partition, expired, in_default_partition

    e = events.c
    removed = 0
    with store.engine.connect() as conn:
        parts = expired(conn, cutoff)
    for part in parts:
        with store.maintenance_transaction() as conn:  # holds the partition lock (Dialect.begin_maintenance)
            if part not in expired(conn, cutoff):
                continue  # another replica dropped it meanwhile
            where = [e.timestamp >= part.lo, e.timestamp < part.hi]
            removed += _remove(store, conn, where, partial(drop_partition, conn, part))
    return removed + clean(store, older_than_ms=cutoff, also=[in_default_partition()])


def compact(store: SQLStore) -> None:
    """VACUUM, emptying the text index first and rebuilding it after (the caller holds the lock)."""
    text = store._text
    # VACUUM may renumber the implicit rowids the FTS index points at, so the index is emptied first
    # (its pages are then reclaimed too; searches scan meanwhile, the watermark being 0) and rebuilt
    # afterwards, the watermark moving with it.
    if text is not None:
        with store._transaction() as cur:
            text.clear(cur)
    store.sql.vacuum(store.engine, store._writer)
    if text is not None:
        with store._transaction() as cur:
            text.rebuild(cur)
    store.sql.checkpoint(store._writer, truncate=True)


def reindex(store: SQLStore) -> None:
    """Rebuild every index and the text index (the caller holds the lock)."""
    store.sql.reindex(store.engine, store._writer)
    if store._text is not None:
        with store._transaction() as cur:
            store._text.rebuild(cur)


def check(store: SQLStore) -> list[str]:
    """The database's integrity checks, and the text index compared with the events table."""
    with store.engine.connect() as conn:
        problems = store.sql.integrity_problems(conn)
    text = store._text
    if text is not None:
        # The index must be complete: index the tail first, in the same write transaction, so no
        # row can arrive unindexed in between.
        with store._lock:
            try:
                with store._transaction() as cur:
                    text.index_all_and_check(cur)
            except store.engine.dialect.dbapi.DatabaseError as exc:  # type: ignore[union-attr]
                problems.append(f"text search index: {exc}")
    return problems
