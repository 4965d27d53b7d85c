"""The write path: statements compiled once to positional DBAPI SQL, and one batch in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Final

from sqlalchemy import BigInteger, Float, Integer, Text, bindparam, case, func, insert, literal_column, or_, update

from ...events import TelemetryEvent
from .._batch import WRITER_RUN_COLUMNS, KnownSession, Plan, TotalsDelta, plan_batch
from ..base import BatchResult
from ..schema import EVENT_COLUMNS, events, rollups, session_rollups, sessions, writer_runs
from .dialect import Dialect, compile_positional
from .text_index import TextIndex

CHUNK: Final = 500  # ids per IN (...) list: well under SQLite's 32766 host-parameter limit
TOTAL_COLUMNS: Final = ("events", "error_events", "sessions", "active_sessions", "ended_sessions",
                        "duration_sum", "duration_count")
SESSION_COLUMNS: Final = TOTAL_COLUMNS[2:]  # the counters session_rollups keeps per start-time bucket


def chunks(items: Sequence[str]) -> Iterator[list[str]]:
    """Split ids into lists of at most CHUNK."""
    for start in range(0, len(items), CHUNK):
        yield list(items[start:start + CHUNK])


def write(cur: Any, st: Statements, batch: Sequence[TelemetryEvent], *, check_ids: bool,
          text: TextIndex | None) -> BatchResult:
    """Plan and write one batch with the cursor of an open transaction; return what was stored."""
    st.dialect.lock_for_write(cur)
    # Before inserting, so new rows never take rowids at or below a stale watermark.
    mark = text.before_write(cur) if text is not None else None
    sids = list({s for e in batch if (s := e.session_id) is not None})
    ids = [e.event_id for e in batch if e.event_id] if check_ids else []
    session_rows, id_rows = st.lookup(cur, sids, ids)
    known = {row[0]: KnownSession(*row[1:]) for row in session_rows}
    plan = plan_batch(batch, known, {row[0] for row in id_rows})
    # Every row of the batch in key order: two writers (replicas, or an SDK beside a server) touching
    # the same sessions or rollup rows then lock them in the same order and never deadlock (PostgreSQL
    # would stop one of them after a second).
    deltas = [plan.sessions[sid] for sid in sorted(plan.sessions)]
    # PostgreSQL sends what is added to `writes` as one statement at each flush(). The order is kept:
    # the rows that take positions first, then the stored sessions' updates (which may wait on a row
    # another writer holds: it then holds positions, never the rollup rows every writer shares), then
    # the rollup and totals upserts (tests/scale/test_pg_changelog_order.py).
    writes = st.dialect.writes(cur)
    new = [d for d in deltas if d.new]
    if new:
        writes.insert_many(st.insert_session, st.session_types, [st.session_row(d) for d in new])
    if plan.events:
        writes.insert_events(st.insert_events, plan.event_rows())
    old = [d for d in deltas if not d.new]
    if old:
        writes.flush()
        cur.executemany(st.update_session, [st.update_row(d) for d in old])
    if plan.rollups:
        writes.insert_many(st.upsert_rollup, st.rollup_types, st.rollup_rows(plan))
    if plan.totals:
        writes.insert_many(st.upsert_totals, st.totals_types, st.totals_rows(plan.totals))
    if plan.session_rollups:
        writes.insert_many(st.upsert_session_rollup, st.session_rollup_types,
                           st.session_rollup_rows(plan.session_rollups))
    writes.flush()
    if text is not None and mark is not None:
        text.after_write(cur, mark)
    return plan.result


def _by_key(item: tuple[Any, Any]) -> tuple[Any, ...]:
    """Sort key of a (key, delta) pair: the key, None as "" (a rollup's category or action may be None)."""
    key = item[0] if isinstance(item[0], tuple) else (item[0],)
    return tuple("" if part is None else part for part in key)


class Statements:
    """The write path's statements, compiled once per store to positional DBAPI SQL."""

    def __init__(self, dialect: Dialect, writer_id: str = "") -> None:
        self.dialect = dialect
        # Whose rows this writer adds its category totals to, where each writer has its own (PostgreSQL).
        self.writer_id = writer_id
        d = dialect.positional()
        self.ph = dialect.placeholder
        self.insert_events, names = compile_positional(insert(events), d)
        assert names == EVENT_COLUMNS, names  # Plan.event_rows builds tuples in this order
        self.insert_session, self._session_names = compile_positional(insert(sessions), d)
        s = sessions.c

        def b(name: str, type_: Any) -> Any:
            # Prefixed: SQLAlchemy reserves a column's own name for the automatic SET parameter.
            return bindparam("b_" + name, type_=type_)

        one: Any = literal_column("1")  # inline, not a bind: only named parameters map to plan values
        started = b("started", Integer) == one
        last = b("last_event_time", BigInteger)
        start_time = b("start_time", BigInteger)
        self.update_session, self._update_names = compile_positional(
            update(sessions).where(s.id == b("sid", Text)).values(
                event_count=s.event_count + b("event_count", Integer),
                stream_count=s.stream_count + b("stream_count", Integer),
                error_count=s.error_count + b("error_count", Integer),
                last_event_time=case((or_(s.last_event_time.is_(None), s.last_event_time < last), last),
                                     else_=s.last_event_time),
                status=func.coalesce(b("status", Text), s.status),
                end_time=func.coalesce(b("end_time", BigInteger), s.end_time),
                duration=case((b("ended", Integer) == one, b("duration", Float)), else_=s.duration),
                start_time=case((started & (start_time < s.start_time), start_time), else_=s.start_time),
                **{col: case((started, b(col, Text)), else_=s[col])
                   for col in ("category", "action", "label", "sandbox_id", "repo_url", "metadata")}), d)
        cols = [c.name for c in rollups.c if c.name != "id"]
        ins = dialect.upsert_insert()(rollups).values({c: b(c, rollups.c[c].type) for c in cols})
        x, r = ins.excluded, rollups.c
        self.upsert_rollup, self._rollup_names = compile_positional(ins.on_conflict_do_update(
            index_elements=["period", "bucket_start", "category", "action", "event_type"],
            set_={"count": r.count + x.count, "error_count": r.error_count + x.error_count,
                  "duration_sum": r.duration_sum + x.duration_sum,
                  "duration_count": r.duration_count + x.duration_count,
                  "duration_min": dialect.least(r.duration_min, x.duration_min),
                  "duration_max": dialect.greatest(r.duration_max, x.duration_max)}), d)
        table = dialect.totals_table()  # session_totals, or each writer's own rows (totals_deltas)
        keys = [c.name for c in table.primary_key.columns]
        ins = dialect.upsert_insert()(table).values({c: b(c, table.c[c].type) for c in (*keys, *TOTAL_COLUMNS)})
        x, t = ins.excluded, table.c
        self.upsert_totals, self._totals_names = compile_positional(ins.on_conflict_do_update(
            index_elements=keys, set_={c: t[c] + x[c] for c in TOTAL_COLUMNS}), d)
        ins = dialect.upsert_insert()(session_rollups).values(
            {c: b(c, session_rollups.c[c].type) for c in ("period", "bucket_start", "category", *SESSION_COLUMNS)})
        x, sr = ins.excluded, session_rollups.c
        self.upsert_session_rollup, self._session_rollup_names = compile_positional(
            ins.on_conflict_do_update(index_elements=["period", "bucket_start", "category"],
                                      set_={c: sr[c] + x[c] for c in SESSION_COLUMNS}), d)

        self._known_any = ("SELECT id, category, start_time, status, end_time, duration FROM sessions "
                           f"WHERE id = ANY({self.ph}::text[])")
        self._stored_any = f"SELECT event_id FROM {dialect.ids_table} WHERE event_id = ANY({self.ph}::text[])"

        # Each parameter's column type, for dialects that send the rows of a batch as one array per column.
        self.session_types = tuple(sessions.c[n].type for n in self._session_names)
        self.rollup_types = tuple(rollups.c[n[2:]].type for n in self._rollup_names)
        self.totals_types = tuple(table.c[n[2:]].type for n in self._totals_names)
        self.session_rollup_types = tuple(session_rollups.c[n[2:]].type for n in self._session_rollup_names)

        cols = [c.name for c in writer_runs.c]
        assert tuple(cols) == WRITER_RUN_COLUMNS, cols
        ins = dialect.upsert_insert()(writer_runs).values({c: b(c, writer_runs.c[c].type) for c in cols})
        self.upsert_run, self._run_names = compile_positional(ins.on_conflict_do_update(
            index_elements=["run_id"],
            set_={c: ins.excluded[c] for c in cols if c not in ("run_id", "started_at")}), d)

    def lookup(self, cur: Any, sids: list[str], ids: list[str]) -> tuple[list[Any], list[Any]]:
        """The stored sessions among sids (id first, then KnownSession's fields) and stored event ids among ids."""
        if not self.dialect.array_lookups:
            session_rows: list[Any] = []
            id_rows: list[Any] = []
            for chunk in chunks(sids):
                cur.execute(self.known_sessions(len(chunk)), chunk)
                session_rows += cur.fetchall()
            for chunk in chunks(ids):
                cur.execute(self.stored_ids(len(chunk)), chunk)
                id_rows += cur.fetchall()
            return session_rows, id_rows
        # One statement each, whatever the count, on cursors of their own: in the writer's pipeline
        # (PostgreSQL) both are sent before either is read, so the lock and both lookups are one round trip.
        # Never prepared: a prepared statement's generic plan, made while event_ids was small, kept
        # scanning the whole table (33 ms a commit at 30k ids, bench/RESULTS.md session 5); planned with
        # the array it always walks the primary key.
        sent = []
        for sql, keys in ((self._known_any, sids), (self._stored_any, ids)):
            if keys:
                c = cur.connection.cursor()
                c.execute(sql, (keys,), prepare=False)
                sent.append(c)
            else:
                sent.append(None)
        out: list[list[Any]] = []
        for c in sent:
            if c is None:
                out.append([])
            else:
                out.append(c.fetchall())
                c.close()
        return out[0], out[1]

    def known_sessions(self, n: int) -> str:
        """SELECT of the stored sessions among n ids."""
        return ("SELECT id, category, start_time, status, end_time, duration FROM sessions "
                f"WHERE id IN ({', '.join([self.ph] * n)})")

    def stored_ids(self, n: int) -> str:
        """SELECT of the stored event ids among n ids."""
        return f"SELECT event_id FROM {self.dialect.ids_table} WHERE event_id IN ({', '.join([self.ph] * n)})"

    def session_row(self, d: Any) -> tuple[Any, ...]:
        """Parameters inserting a session first seen in this batch."""
        values = {"id": d.id, "category": d.category, "action": d.action, "status": d.status or "active",
                  "start_time": d.start_time, "end_time": d.end_time, "duration": d.duration,
                  "event_count": d.event_count, "stream_count": d.stream_count, "error_count": d.error_count,
                  "last_event_time": d.last_event_time, "label": d.label, "sandbox_id": d.sandbox_id,
                  "repo_url": d.repo_url, "metadata": d.metadata_json}
        return tuple(values[n] for n in self._session_names)

    def update_row(self, d: Any) -> tuple[Any, ...]:
        """Parameters adding one batch's delta to a stored session."""
        values = {"sid": d.id, "event_count": d.event_count, "stream_count": d.stream_count,
                  "error_count": d.error_count, "last_event_time": d.last_event_time, "status": d.status,
                  "ended": 1 if d.status is not None else 0, "end_time": d.end_time, "duration": d.duration,
                  "started": 1 if d.started else 0, "start_time": d.start_time, "category": d.category,
                  "action": d.action, "label": d.label, "sandbox_id": d.sandbox_id, "repo_url": d.repo_url,
                  "metadata": d.metadata_json}
        return tuple(values[n[2:]] for n in self._update_names)

    def totals_rows(self, totals: dict[str, TotalsDelta]) -> list[tuple[Any, ...]]:
        """Parameters adding per-category deltas to session_totals."""
        keys = {"b_writer_id": self.writer_id}
        return [tuple(category if n == "b_category" else keys[n] if n in keys else getattr(v, n[2:])
                      for n in self._totals_names) for category, v in sorted(totals.items(), key=_by_key)]

    def session_rollup_rows(self, buckets: dict[tuple[str, int, str], TotalsDelta]) -> list[tuple[Any, ...]]:
        """Parameters adding per-(period, bucket, category) session deltas to session_rollups."""
        out = []
        for (period, bucket, category), v in sorted(buckets.items(), key=_by_key):
            values = {"period": period, "bucket_start": bucket, "category": category}
            out.append(tuple(values[n[2:]] if n[2:] in values else getattr(v, n[2:])
                             for n in self._session_rollup_names))
        return out

    def rollup_rows(self, plan: Plan) -> list[tuple[Any, ...]]:
        """Parameters adding the batch's rollup deltas."""
        out = []
        for (period, bucket, category, action, kind), v in sorted(plan.rollups.items(), key=_by_key):
            values = {"period": period, "bucket_start": bucket, "category": category, "action": action,
                      "event_type": kind, "count": v.count, "error_count": v.error_count,
                      "duration_sum": v.duration_sum, "duration_count": v.duration_count,
                      "duration_min": v.duration_min, "duration_max": v.duration_max}
            out.append(tuple(values[n[2:]] for n in self._rollup_names))
        return out
