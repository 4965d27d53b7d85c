"""Reading export files back: each format to raw records (dicts), each with its place in the file."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Final

from ..errors import ValidationError
from ..events import FIELD_ALIASES
from . import compression as comp
from .records import SESSION_COLUMNS, decode_json_columns, typed_cell

READ_FORMATS: Final = ("json", "ndjson", "csv", "parquet", "otlp")
_BY_EXTENSION: Final = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".tsv": "csv",
                        ".parquet": "parquet", ".pq": "parquet", ".pb": "otlp", ".binpb": "otlp"}
_DELIMITERS: Final = (",", ";", "\t", "|")

Record = tuple[str, dict[str, Any]]


class ImportFileError(ValidationError):
    """A file that cannot be read as the format: names the file, the place (line, row) and the problem."""

    def __init__(self, path: str, where: str, problem: str) -> None:
        super().__init__("file", problem, message=f"{path}: {where}: {problem}")
        self.path = path
        self.where = where


class BadRecord(dict[str, Any]):
    """A record that could not be read (bad JSON line, bad CSV cell): the importer rejects it with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


@contextmanager
def open_decompressed(path: str) -> Iterator[IO[bytes]]:
    """Open a file for reading, decompressed (gzip and zstd by content, brotli by extension)."""
    if not os.path.isfile(path):
        raise ValidationError("file", "an existing file", path)
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        yield comp.decompressing_reader(raw, comp.detect(head, path))


def detect_format(path: str) -> str:
    """Return the format of a file: by extension (compression stripped), else by its first bytes."""
    ext = os.path.splitext(comp.strip_extension(path))[1].lower()
    if ext in _BY_EXTENSION:
        fmt = _BY_EXTENSION[ext]
        return "otlp" if fmt == "json" and _looks_otlp(path) else fmt
    with open(path, "rb") as raw:
        if raw.read(4) == b"PAR1":
            return "parquet"
    with open_decompressed(path) as stream:
        head = stream.read(65536).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        if b'"resourceSpans"' in head[:200]:
            return "otlp"
        first = head.split(b"\n", 1)[0]
        try:
            json.loads(first)
        except ValueError:
            return "json"
        return "ndjson"
    return "csv"


def _looks_otlp(path: str) -> bool:
    try:
        with open_decompressed(path) as stream:
            return b'"resourceSpans"' in stream.read(200)
    except (OSError, ValueError):
        return False


def read_records(path: str, fmt: str, *, delimiter: str | None = None) -> Iterator[Record]:
    """Yield (place, record) for every record of the file; ImportFileError on a malformed part."""
    if fmt == "parquet":
        yield from _parquet(path)
        return
    if fmt == "otlp":
        from .otlp_reader import read_otlp

        yield from read_otlp(path)
        return
    try:
        with open_decompressed(path) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            if fmt == "ndjson":
                yield from _ndjson(path, text)
            elif fmt == "csv":
                yield from _csv(path, text, delimiter)
            else:
                yield from _json(path, text)
    except (EOFError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ImportFileError(path, "reading", f"the file is truncated or not in the expected encoding/"
                              f"compression ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ImportFileError(path, "reading", f"the compressed data is truncated or corrupt ({exc})") from None


def _object(path: str, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImportFileError(path, where, f"expected a JSON object (an event), got {type(value).__name__}")
    return value


def _ndjson(path: str, text: IO[str]) -> Iterator[Record]:
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield where, BadRecord(f"not valid JSON ({exc})")
            continue
        yield where, value if isinstance(value, dict) else BadRecord("expected a JSON object (an event)")


_HEADER = re.compile(r'^\{"export": \{.*\}, "events": \[\s*$')


def _json(path: str, text: IO[str]) -> Iterator[Record]:
    first = text.readline()
    if _HEADER.match(first):
        second = text.readline()
        if not second.startswith("  "):
            # Our own layout: one event per line between the header and the counts, read line by line
            # (constant memory whatever the file's size). Pretty-printed files are parsed whole.
            yield from _json_lines(path, itertools.chain([second], text))
            return
        first += second
    try:
        document = json.loads(first + text.read())
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise ImportFileError(path, f"line {line}" if line else "document", f"not valid JSON ({exc})") from None
    if isinstance(document, dict) and "resourceSpans" in document:
        raise ValidationError("format", "json events, not an OTLP document", "otlp")
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        items = document["events"]
    elif isinstance(document, list):
        items = document
    else:
        items = [document]
    for index, item in enumerate(items):
        where = f"events[{index}]"
        yield where, _object(path, where, item)


def _json_lines(path: str, text: Iterable[str]) -> Iterator[Record]:
    number = 1
    for number, line in enumerate(text, start=2):
        stripped = line.rstrip("\r\n")
        if stripped.startswith("]"):
            return
        if stripped.startswith("  "):
            raise ImportFileError(path, f"line {number}", "an indented event in a one-event-per-line file")
        body = stripped[:-1] if stripped.endswith(",") else stripped
        where = f"line {number}"
        try:
            value = json.loads(body)
        except ValueError as exc:
            yield where, BadRecord(f"not valid JSON, truncated or corrupt ({exc})")
            continue
        yield where, value if isinstance(value, dict) else BadRecord("expected a JSON object (an event)")
    raise ImportFileError(path, f"end of file after line {number}",
                          "the file is truncated (no closing `]` after the events)")


def _field_pattern(delimiter: str) -> re.Pattern[str]:
    d = re.escape(delimiter)
    return re.compile(r'"((?:[^"]|"")*)"|([^"' + d + r'\r\n]*)')


def _records(text: IO[str]) -> Iterator[tuple[int, str]]:
    """Yield (first line number, logical record) with quoted line breaks kept inside the record."""
    pending, start, quotes = "", 0, 0
    for number, line in enumerate(text, start=1):
        if not pending:
            start = number
        pending += line
        quotes += line.count('"')
        if quotes % 2 == 0:
            yield start, pending.rstrip("\r\n")
            pending, quotes = "", 0
    if pending:
        yield start, pending  # an unclosed quote: the splitter reports it


def _split(record: str, delimiter: str, pattern: re.Pattern[str]) -> list[str | None] | None:
    """Split one record: quoted text stays text (even empty), an empty unquoted cell is None."""
    cells: list[str | None] = []
    pos, end = 0, len(record)
    while True:
        m = pattern.match(record, pos)
        if m is None:
            return None
        quoted, plain = m.group(1), m.group(2)
        cells.append(quoted.replace('""', '"') if quoted is not None else (plain or None))
        pos = m.end()
        if pos == end:
            return cells
        if record[pos] != delimiter:
            return None
        pos += 1
        if pos == end:
            cells.append(None)
            return cells


def _csv(path: str, text: IO[str], delimiter: str | None) -> Iterator[Record]:
    records = _records(text)
    try:
        _, header_line = next(records)
    except StopIteration:
        return
    if delimiter is None:
        delimiter = max(_DELIMITERS, key=header_line.count)
    pattern = _field_pattern(delimiter)
    header = _split(header_line, delimiter, pattern)
    if not header or any(h is None for h in header):
        raise ImportFileError(path, "line 1", "a header row of column names")
    names = [h.strip() for h in header if h is not None]
    if names[:4] == list(SESSION_COLUMNS[:4]):
        raise ImportFileError(path, "line 1", "an events table (this is the sessions table of a CSV export; "
                              "sessions are rebuilt from the events file)")
    canonical = []
    for name in names:
        known = FIELD_ALIASES.get(name)
        if known is None:
            raise ImportFileError(path, "line 1", f"known event columns, got {name!r}")
        canonical.append(known)
    for row, (line, record) in enumerate(records, start=1):
        where = f"line {line} (row {row})"
        if not record:
            continue
        cells = _split(record, delimiter, pattern)
        if cells is None:
            yield where, BadRecord("expected a well-formed CSV row (a quote is not closed or is misplaced)")
            continue
        if len(cells) != len(names):
            yield where, BadRecord(f"expected {len(names)} cells as in the header, got {len(cells)}")
            continue
        try:
            values = {name: typed_cell(column, cell, where)
                      for name, column, cell in zip(names, canonical, cells, strict=True) if cell is not None}
        except ValueError as exc:
            yield where, BadRecord(str(exc).split(": ", 1)[-1])
            continue
        yield where, values


def _parquet(path: str) -> Iterator[Record]:
    from .writers import require_pyarrow

    pa = require_pyarrow()
    try:
        parquet = pa.parquet.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ImportFileError(path, "file", f"a readable Parquet file ({exc})") from None
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=10_000):
            for record in batch.to_pylist():
                row += 1
                where = f"row {row}"
                clean = {k: v for k, v in record.items() if v is not None}
                try:
                    decoded = decode_json_columns(clean, where)
                except ValueError as exc:
                    yield where, BadRecord(str(exc).split(": ", 1)[-1])
                    continue
                yield where, decoded
    except (OSError, pa.ArrowException) as exc:
        raise ImportFileError(path, f"row {row + 1}", f"readable Parquet data ({exc})") from None
