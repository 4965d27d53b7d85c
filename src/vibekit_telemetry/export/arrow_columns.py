"""Arrow columns straight from pages of rows, built from buffers (the Parquet writer's input).

Why not `pyarrow.array(list)`: its first call imports pandas whenever pandas is installed (to check
whether the list is a pandas object), 54 MB of an export's peak RSS of ~165 MB. Building each
column from its buffers (validity bitmap, offsets, data) uses only public Arrow API, imports nothing,
and costs about 0.1 µs per cell.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from operator import is_not
from typing import Any, Final

_MAX_OFFSET: Final = 2**31 - 1  # int32 offsets of the `string` type
# map(_EMPTY, values, values): None -> "", any other value unchanged (at C speed, no Python per cell).
_EMPTY: Final[Callable[[Any, Any], Any]] = {None: ""}.get
_ZERO: Final[Callable[[Any, Any], Any]] = {None: 0}.get


def _validity(pa: Any, values: Sequence[Any]) -> tuple[Any, int]:
    """The validity bitmap of a column (None when nothing is null) and its null count."""
    if None not in values:
        return None, 0
    flags = bytes(map(is_not, values, repeat(None)))  # 1 per present value, 0 per null
    as_bytes = pa.Array.from_buffers(pa.uint8(), len(flags), [None, pa.py_buffer(flags)])
    return as_bytes.cast(pa.bool_()).buffers()[1], len(flags) - sum(flags)


def string_column(pa: Any, values: Sequence[str | None]) -> Any:
    """A `string` array of the values (None: null)."""
    bitmap, nulls = _validity(pa, values)
    texts: Sequence[str] = list(map(_EMPTY, values, values)) if nulls else values  # type: ignore[assignment]
    joined = "".join(texts)
    if joined.isascii():  # the usual case: one encode for the column, lengths in characters are bytes
        data, lengths = joined.encode("ascii"), map(len, texts)
    else:
        encoded = [text.encode("utf-8") for text in texts]
        data, lengths = b"".join(encoded), map(len, encoded)
    if len(data) > _MAX_OFFSET:  # a page of huge texts: let Arrow split it into chunks
        return pa.array(values, type=pa.string())
    offsets = struct.pack(f"{len(values) + 1}i", *accumulate(lengths, initial=0))
    return pa.Array.from_buffers(pa.string(), len(values), [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                 nulls)


def number_column(pa: Any, kind: Any, values: Sequence[float | int | None]) -> Any:
    """An int64 or float64 array of the values (None: null)."""
    bitmap, nulls = _validity(pa, values)
    code = "q" if kind == pa.int64() else "d"
    filled = list(map(_ZERO, values, values)) if nulls else values
    data = struct.pack(f"{len(values)}{code}", *filled)
    return pa.Array.from_buffers(kind, len(values), [bitmap, pa.py_buffer(data)], nulls)


def page_columns(pa: Any, types: Sequence[Any], page: Sequence[Sequence[Any]]) -> list[Any]:
    """The Arrow arrays of a page of rows, one per column, of the given string / int64 / float64 types."""
    string = pa.string()
    return [string_column(pa, values) if kind == string else number_column(pa, kind, values)
            for values, kind in zip(zip(*page, strict=True), types, strict=True)]
