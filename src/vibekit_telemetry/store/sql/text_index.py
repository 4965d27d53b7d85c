"""The deferred text index (SQLite FTS5 trigram): events are inserted unindexed and indexed in bulk.

A watermark in store_meta says up to which rowid the index is complete; searches use the index up to
it and scan the few newer rows (see SQLiteDialect.contains). Every method runs on the writer
connection under the store's lock.
"""

from __future__ import annotations

import time
from typing import Any, Final

from ..schema import FTS_WATERMARK

_WATERMARK_SQL: Final = f"SELECT value FROM store_meta WHERE key = '{FTS_WATERMARK}'"
_SET_WATERMARK: Final = (f"INSERT INTO store_meta (key, value) VALUES ('{FTS_WATERMARK}', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
_INDEX_RANGE: Final = ("INSERT INTO events_fts(rowid, label, stream_data) SELECT rowid, label, stream_data "
                       "FROM events WHERE rowid > ? AND rowid <= ? "
                       "AND (label IS NOT NULL OR stream_data IS NOT NULL)")
_MAX_ROWID: Final = "SELECT COALESCE(MAX(rowid), 0) FROM events"


def watermark(cur: Any) -> tuple[int, int]:
    """(watermark, max rowid) inside a write transaction, lowering the watermark past deleted rows.

    Rowids are max(rowid) + 1: when the newest rows were deleted, new rows would reuse rowids at or
    below the watermark and never be indexed, so the watermark follows max(rowid) down.
    """
    cur.execute(f"SELECT ({_WATERMARK_SQL}), ({_MAX_ROWID})")
    mark, top = cur.fetchone()
    if mark is None or top < mark:
        mark = min(top, mark or 0)
        cur.execute(_SET_WATERMARK, (mark,))
    return int(mark), int(top)


class TextIndex:
    """Bookkeeping of the unindexed tail, and the statements that index, check and rebuild it."""

    # The SQL that keeps the watermark at most max(rowid) after rows are deleted (Core connection).
    CLAMP_AFTER_DELETE: Final = (
        f"UPDATE store_meta SET value = ({_MAX_ROWID}) WHERE key = '{FTS_WATERMARK}' AND value > ({_MAX_ROWID})")

    def __init__(self, rows: int, delay_s: float, *, kept: bool = True) -> None:
        self.rows, self.delay_s = max(1, rows), delay_s
        # kept=False: the index exists but the writer does not extend it (write-heavy stores); the
        # watermark is still maintained, so searches stay exact by scanning past it.
        self.kept = kept
        self.unindexed = 0  # rows above the watermark, as of the last write
        self.unindexed_since: float | None = None  # monotonic time the oldest of them was written

    def before_write(self, cur: Any) -> int:
        """Read the watermark before inserting, so new rows never take rowids at or below a stale one."""
        return watermark(cur)[0]

    def after_write(self, cur: Any, mark: int) -> None:
        """Note how many rows now wait to be indexed."""
        cur.execute(_MAX_ROWID)
        self.unindexed = cur.fetchone()[0] - mark
        if self.unindexed and self.unindexed_since is None:
            self.unindexed_since = time.monotonic()

    def note_unindexed(self, rows: int) -> None:
        """Note rows another process wrote (the writer process): how many now wait to be indexed."""
        self.unindexed = rows
        if rows and self.unindexed_since is None:
            self.unindexed_since = time.monotonic()

    def due(self) -> bool:
        """Whether enough rows wait, or the oldest has waited long enough, to index a chunk now."""
        if not self.unindexed or not self.kept:
            return False
        since = self.unindexed_since
        return self.unindexed >= self.rows or (since is not None and time.monotonic() - since >= self.delay_s)

    def index_chunk(self, cur: Any, max_rows: int) -> tuple[int, int]:
        """Index up to max_rows rowids above the watermark (in the caller's transaction): (covered, left)."""
        mark, top = watermark(cur)
        upto = min(top, mark + max_rows)
        if upto > mark:
            cur.execute(_INDEX_RANGE, (mark, upto))
            cur.execute(_SET_WATERMARK, (upto,))
        self._left(top - upto)
        return upto - mark, top - upto

    def index_all_and_check(self, cur: Any) -> None:
        """Index the whole tail and run FTS5's integrity check, in the caller's transaction."""
        mark, top = watermark(cur)
        cur.execute(_INDEX_RANGE, (mark, top))
        cur.execute(_SET_WATERMARK, (top,))
        cur.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
        self._left(0)

    def clear(self, cur: Any) -> None:
        """Empty the index and set the watermark to 0 (searches scan until it is rebuilt)."""
        cur.execute("INSERT INTO events_fts(events_fts) VALUES ('delete-all')")
        cur.execute(_SET_WATERMARK, (0,))

    def rebuild(self, cur: Any) -> None:
        """Rebuild the index from every events row and set the watermark to the newest."""
        cur.execute("INSERT INTO events_fts(events_fts) VALUES ('rebuild')")
        cur.execute(_MAX_ROWID)
        cur.execute(_SET_WATERMARK, (cur.fetchone()[0],))
        self._left(0)

    def _left(self, n: int) -> None:
        self.unindexed = n
        if not n:
            self.unindexed_since = None
