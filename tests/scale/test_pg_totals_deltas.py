"""Per-category totals on PostgreSQL: each writer adds to its own delta rows, upkeep folds them exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from pgscale_db import fresh_database
from sqlalchemy import func, select, text

from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.query import StatsFilter
from vibekit_telemetry.store.sql import SQLStore

WRITERS, BATCHES, PER_BATCH = 3, 15, 20

# One writer process: BATCHES sessions of PER_BATCH events of category "shared", each session ended.
_WRITER = """
import sys
from vibekit_telemetry.events import TelemetryEvent, now_ms
from vibekit_telemetry.store.sql import SQLStore
url, me, batches, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = SQLStore(url)
t = now_ms()
for b in range(batches):
    sid = f"{me}-{b}"
    batch = [TelemetryEvent("start", "shared", session_id=sid, timestamp=t)]
    batch += [TelemetryEvent("custom", "shared", session_id=sid, timestamp=t + i) for i in range(1, per - 1)]
    batch.append(TelemetryEvent("end", "shared", session_id=sid, timestamp=t + per, duration=2.0))
    store.store_batch(batch)
store.shutdown()
"""


@pytest.fixture
def url() -> Iterator[str]:
    """A new database of this test's own."""
    with fresh_database() as found:
        yield found


def _snapshot(store: SQLStore) -> tuple[int, int]:
    """Events counted in the table and in the totals, in one snapshot."""
    totals = store.sql.totals_source()
    with store.engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        counted = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        summed = conn.execute(select(func.coalesce(func.sum(totals.c.events), 0))).scalar_one()
    return int(counted), int(summed)


def test_writers_in_several_processes_keep_one_categorys_totals_exact_while_folds_run(url: str) -> None:
    store = SQLStore(url)
    store.initialize()
    try:
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, f"w{i}", str(BATCHES), str(PER_BATCH)])
                 for i in range(WRITERS)]
        folds = 0
        while any(p.poll() is None for p in procs):
            counted, summed = _snapshot(store)
            assert counted == summed  # exact at any moment: folded + unfolded deltas
            store.upkeep()  # folds every writer's deltas into session_totals, in one transaction
            folds += 1
            time.sleep(0.05)
        assert [p.wait() for p in procs] == [0] * WRITERS and folds > 0
        total = WRITERS * BATCHES * PER_BATCH
        with store.engine.connect() as conn:  # each writer wrote its own rows: at most one per writer
            writers = conn.execute(text("SELECT count(DISTINCT writer_id), count(*) FROM totals_deltas")).one()
        assert writers[0] == writers[1] <= WRITERS
        stats = store.get_stats(StatsFilter())
        assert (stats.total_events, stats.total_sessions, stats.active_sessions) == (total, WRITERS * BATCHES, 0)
        assert stats.avg_session_duration_ms == 2.0
        store.upkeep()
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM totals_deltas")).scalar_one() == 0
            assert conn.execute(text("SELECT events, sessions, ended_sessions FROM session_totals "
                                     "WHERE category = 'shared'")).one() == (total, WRITERS * BATCHES,
                                                                              WRITERS * BATCHES)
        assert store.get_stats(StatsFilter()).total_events == total
    finally:
        store.shutdown()


def test_clean_after_writes_by_another_writer_corrects_folded_totals(url: str) -> None:
    writer, cleaner = SQLStore(url), SQLStore(url)
    try:
        t = now_ms()
        writer.store_batch([TelemetryEvent("start", "a", session_id="s1", timestamp=t),
                            TelemetryEvent("start", "b", session_id="s2", timestamp=t)])
        # The cleaner's own totals rows are empty: clean folds the writer's deltas before subtracting.
        assert cleaner.clean(categories=["a"]) == 1
        stats = cleaner.get_stats(StatsFilter())
        assert stats.agents == {"b": 1} and stats.total_sessions == 1
        assert writer.health()["events"] == 1
    finally:
        writer.shutdown()
        cleaner.shutdown()
