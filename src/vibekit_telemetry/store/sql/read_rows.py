"""Raw rows for exports: a QueryFilter's events as pages of plain tuples, straight from the SELECT."""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter, methodcaller
from typing import Any

from sqlalchemy import (
    Engine,
    select,
)

from ...errors import ValidationError
from ...privacy.crypto import META_PREFIX, PREFIX, decrypt_meta, decrypt_text
from ...query import QueryFilter
from ..base import (
    check_row_columns,
)
from ..schema import events
from .dialect import Dialect
from .read import event_conditions, keyset_after

_DECRYPT: Any = {"label": lambda v: decrypt_text(v, "label"), "stream_data": lambda v: decrypt_text(v, "stream_data"),
                 "metadata": decrypt_meta}
_is_encrypted = methodcaller("startswith", (PREFIX, META_PREFIX))


def _decrypted(page: list[tuple[Any, ...]], at: list[tuple[int, Any]]) -> list[tuple[Any, ...]]:
    """The page with encrypted cells replaced by their plaintext (the page itself when none is encrypted)."""
    # The common case (nothing encrypted) is checked column by column at C speed: no Python per row.
    if not any(any(map(_is_encrypted, filter(None, map(itemgetter(i), page)))) for i, _ in at):
        return page
    out: list[tuple[Any, ...]] = []
    for row in page:
        cells = list(row)
        for j, read_mapping in at:
            cells[j] = read_mapping(cells[j])
        out.append(tuple(cells))
    return out


def iter_rows(engine: Engine, f: QueryFilter, dialect: Dialect, fts: bool, columns: Any,
              chunk_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Yield a QueryFilter's events as pages of raw rows (tuples in `columns` order), in constant memory.

    The same keyset pages as iter_events, straight from the SELECT: metadata and context stay JSON
    text, nothing is built per row (exports write these cells as they are). Encrypted cells are
    decrypted, as iter_events does.
    """
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValidationError("chunk_size", "an integer of at least 1", chunk_size)
    names = check_row_columns(columns)
    # The keyset needs timestamp and event_id of each page's last row: selected after the asked
    # columns when not among them, and cut off again.
    extra = [c for c in ("timestamp", "event_id") if c not in names]
    selected = (*names, *extra)
    ts_at, id_at = selected.index("timestamp"), selected.index("event_id")
    decrypt_at = [(i, _DECRYPT[name]) for i, name in enumerate(names) if name in _DECRYPT]
    ts, eid = events.c.timestamp, events.c.event_id
    desc = f.order == "desc"
    order = [ts.desc(), eid.desc()] if desc else [ts, eid]
    base = select(*(events.c[name] for name in selected)).where(*event_conditions(f, dialect, fts)).order_by(*order)
    left, skip = f.limit, f.offset
    after: tuple[int, str] | None = f.after  # a cursor: start after it
    while left is None or left > 0:
        size = chunk_size if left is None else min(chunk_size, left)
        stmt = base.limit(size)
        if after is not None:
            stmt = stmt.where(keyset_after(after, desc))
        elif skip:
            stmt = stmt.offset(skip)  # once, for the first page only
        with engine.connect() as conn:
            result = conn.execute(stmt)
            # Plain DBAPI tuples: these columns need no result processing (text, integers, floats on
            # both backends), and building a Row object per row cost a fifth of a raw export.
            page: list[tuple[Any, ...]] = list(result.cursor.fetchall())
            result.close()
        if not page:
            return
        last = page[-1]
        after = (last[ts_at], last[id_at])
        if extra:
            page = [row[:len(names)] for row in page]
        yield _decrypted(page, decrypt_at) if decrypt_at else page
        if len(page) < size:
            return
        if left is not None:
            left -= len(page)
