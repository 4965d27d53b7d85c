"""The deferred text index (SQLite FTS5 trigram): events are inserted unindexed and indexed in bulk.

A watermark in store_meta says up to which rowid the index is complete; searches use the index up to
it and scan the few newer rows (see SQLiteDialect.contains). Every method runs on the writer
connection under the store's lock.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final

from ..schema import FTS_WATERMARK

if TYPE_CHECKING:
    from sqlalchemy import Engine

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
        self.note_unindexed(cur.fetchone()[0] - mark)

    def note_unindexed(self, rows: int) -> None:
        """Note how many rows wait to be indexed (after a write here, or in the writer process)."""
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


class TextIndexMethods:
    """index_text / unindexed_rows of SQLStore (a mixin): the text index catching up behind the writer."""

    if TYPE_CHECKING:
        _lock: threading.RLock
        _text: TextIndex | None

        @property
        def engine(self) -> Engine:
            """The store's engine (SQLStore initialises on first use)."""

        def _transaction(self) -> AbstractContextManager[Any]:
            """The writer's cursor in one transaction (the caller holds the lock)."""

    def index_text(self, max_rows: int | None = None, *, deadline: float | None = None) -> int:
        """Add the events stored since the last call to the text index; return how many rowids it covered.

        Works in transactions of at most `text_index_rows` rows, so a concurrent reader or writer
        waits for one chunk at most. max_rows bounds the work of this call (None: everything);
        deadline (time.monotonic()) stops it between chunks.
        """
        self.engine  # noqa: B018
        done = 0
        while (max_rows is None or done < max_rows) and (deadline is None or time.monotonic() < deadline):
            # The lock is taken per chunk, not for the whole call: a writer waiting to commit (an HTTP
            # client waiting for its acknowledgement) gets in between two chunks.
            with self._lock:
                text = self._text
                if text is None or not text.kept:
                    return done
                step = text.rows if max_rows is None else min(text.rows, max_rows - done)
                with self._transaction() as cur:
                    covered, left = text.index_chunk(cur, step)
            done += covered
            if not left:
                break
            time.sleep(0.002)  # Python locks are not fair: step aside so a waiting writer gets the lock
        return done

    def unindexed_rows(self) -> int:
        """Return how many rows wait for the text index, as of the last write or index step."""
        text = self._text
        return text.unindexed if text is not None and text.kept else 0
