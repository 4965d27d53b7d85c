"""Copy every event of one SQL store into another (SQLite to PostgreSQL and back): resumable, verified.

The target keeps the position copied up to as an exporter cursor named after the source, so a copy
that was interrupted resumes where it stopped; the target skips events it already holds by
event_id, so even the batch in flight at the interruption is stored once. Sessions, rollups and
totals are rebuilt in the target from the events, by its own write path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from ..errors import ValidationError

CHUNK = 500


@dataclass(slots=True)
class CopyResult:
    """What one copy did: events read and newly stored in this run, and the verification."""

    source_events: int = 0
    read: int = 0
    stored: int = 0
    missing: int = 0  # source events the target does not hold after the copy (0 when verified)


def cursor_name(source_url: str) -> str:
    """The cursor the target keeps for a source: `db-copy:` plus its URL without the password."""
    return "db-copy:" + make_url(source_url).render_as_string(hide_password=True)


def copy_events(source: Any, target: Any, *, batch: int = 5000,
                progress: Callable[[int, int], None] | None = None) -> CopyResult:
    """Copy source's committed events after the target's cursor; then check every source id is in the target.

    `source` and `target` are initialized SQLStores. `progress(done, total)` is called after each batch.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 100_000:
        raise ValidationError("batch", "an integer from 1 to 100000", batch)
    if source.url == target.url:
        raise ValidationError("to", "a database other than the source", target.url)
    name = cursor_name(source.url)
    result = CopyResult()
    after = target.load_cursor(name) or 0
    newest = source.committed_position()
    while after < newest:
        rows = source.read_committed(after, batch)
        if not rows:
            break
        outcome = target.store_batch([event for _, event in rows])
        result.read += len(rows)
        result.stored += outcome.stored
        after = rows[-1][0]
        target.save_cursor(name, after)  # after the commit: a crash re-copies at most this batch
        if progress is not None:
            progress(after, newest)
    result.source_events, result.missing = _verify(source, target)
    return result


def _verify(source: Any, target: Any) -> tuple[int, int]:
    """Count the source's events and those of them the target lacks, by event id."""
    total = missing = 0
    after = 0
    while True:
        rows = source.read_committed(after, CHUNK)
        if not rows:
            return total, missing
        ids = [event.event_id for _, event in rows if event.event_id]
        total += len(rows)
        missing += len(ids) - len(target.existing_event_ids(ids))
        after = rows[-1][0]
