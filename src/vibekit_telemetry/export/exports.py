"""One export: rows streamed from the store (iter_rows pages) into a format, compressed, written whole."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..query import QueryFilter, SessionFilter, parse_query
from ..store.base import EventIterable, RowIterable, Session
from . import compression as comp
from .output import atomic_output, is_url, output_size
from .records import EVENT_COLUMNS, SCHEMA_VERSION, SESSION_COLUMNS, event_row, session_row
from .writers import (
    CHUNK,
    FORMATS,
    PARQUET_CODECS,
    Page,
    Progress,
    check_delimiter,
    chunked,
    write_csv,
    write_csv_rows,
    write_json,
    write_ndjson,
    write_otlp,
    write_parquet,
)

TABLES: Final = ("events", "sessions")
_SESSION_PAGE: Final = 5000


@dataclass(slots=True)
class ExportResult:
    """What an export wrote: where, how many records, how many bytes."""

    path: str
    format: str
    record_count: int
    file_size: int | None
    compression: str
    duration_s: float
    # Per-table files of a CSV export with several tables: table -> (path, rows).
    files: dict[str, tuple[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain dict."""
        return asdict(self)


def check_format(fmt: Any, field_name: str = "format") -> str:
    """Return the format name, lower case; ValidationError naming the known ones."""
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ValidationError(field_name, "one of " + ", ".join(FORMATS), fmt)
    return fmt.lower()


def _tables(tables: str | Sequence[str] | None, fmt: str) -> list[str]:
    if tables is not None and not isinstance(tables, str | list | tuple):
        raise ValidationError("tables", "a list of " + " and ".join(TABLES), tables)
    names = [t.strip() for t in tables.split(",")] if isinstance(tables, str) else list(tables or ["events"])
    for name in names:
        if name not in TABLES:
            raise ValidationError("tables", "a list of " + " and ".join(TABLES), name)
    if names != ["events"] and fmt != "csv":
        raise ValidationError("tables", "events only, except with the csv format (one file per table)", tables)
    return names


def _stream(store: Any, query: QueryFilter) -> Iterator[TelemetryEvent]:
    if not isinstance(store, EventIterable):
        raise ValidationError("store", "a store that streams events (iter_events)", type(store).__name__)
    return store.iter_events(query, chunk_size=CHUNK)


def _pages(store: Any, query: QueryFilter) -> Iterator[Page]:
    """Pages of raw rows in EVENT_COLUMNS order: straight from the store's SELECT when it offers iter_rows."""
    if isinstance(store, RowIterable):
        return store.iter_rows(query, EVENT_COLUMNS, chunk_size=CHUNK)
    # Any other event source (a file being converted, a store without raw rows): rows of its events.
    return (list(map(event_row, chunk)) for chunk in chunked(_stream(store, query), CHUNK))


def _sessions(store: Any, query: QueryFilter) -> Iterator[Session]:
    """The sessions the events of the filter belong to, a page at a time."""
    if query.session_ids:
        for sid in query.session_ids:
            session = store.get_session(sid)
            if session is not None:
                yield session
        return
    offset = 0
    while True:
        page = store.get_sessions(SessionFilter(categories=list(query.categories), since=query.since,
                                                until=query.until, limit=_SESSION_PAGE, offset=offset,
                                                order="asc"))
        yield from page
        if len(page) < _SESSION_PAGE:
            return
        offset += len(page)


def table_path(path: str, table: str) -> str:
    """Return the file of one table of a multi-table CSV export: data.csv -> data-events.csv."""
    base = comp.strip_extension(path)
    suffix = path[len(base):]
    stem, dot, ext = base.rpartition(".")
    if not dot or "/" in ext:
        return f"{base}-{table}{suffix}"
    return f"{stem}-{table}.{ext}{suffix}"


def export_events(store: Any, fmt: str, *, output_path: str, filter: QueryFilter | Mapping[str, Any] | None = None,
                  compression: str | None = None, pretty: bool = False, delimiter: str = ",", header: bool = True,
                  tables: str | Sequence[str] | None = None, progress: Progress | None = None,
                  storage_options: Mapping[str, Any] | None = None) -> ExportResult:
    """Export the store's events matching `filter` to `output_path` in `fmt`; return what was written.

    compression: gzip, brotli, zstd or none for the file (default: from the path's extension); for
    Parquet it is the codec inside the file (snappy by default, zstd, gzip, brotli, none).
    storage_options: for a URL, the fsspec filesystem's options (e.g. endpoint_url, key, secret for s3://).
    """
    started = time.perf_counter()
    fmt = check_format(fmt)
    if not isinstance(output_path, str) or not output_path:
        raise ValidationError("output_path", "a file path or URL", output_path)
    query = replace(parse_query(filter), order="asc")
    if fmt == "parquet":
        if compression is not None and (not isinstance(compression, str) or compression.lower() not in PARQUET_CODECS):
            raise ValidationError("compression", "for Parquet one of " + ", ".join(PARQUET_CODECS), compression)
        compression_name = (compression or "snappy").lower()
    else:
        compression_name = comp.normalise(compression) or comp.from_extension(output_path)
        delimiter = check_delimiter(delimiter) if fmt == "csv" else delimiter
    names = _tables(tables, fmt)
    files: dict[str, tuple[str, int]] = {}
    for table in names:
        path = output_path if len(names) == 1 else table_path(output_path, table)
        with atomic_output(path, storage_options) as raw:
            if fmt == "parquet":
                count = write_parquet(_pages(store, query), raw, codec=compression_name, progress=progress)
            else:
                sink = comp.compressing_writer(raw, compression_name)
                count = _write_text(store, fmt, table, query, sink, pretty=pretty, delimiter=delimiter,
                                    header=header, progress=progress)
                sink.close()
        files[table] = (path, count)
    first_path, first_count = files[names[0]]
    size = sum(filter_none(output_size(p, storage_options) for p, _ in files.values()))
    return ExportResult(path=first_path, format=fmt, record_count=first_count,
                        file_size=None if is_url(output_path) and not size else size,
                        compression=compression_name, duration_s=time.perf_counter() - started,
                        files=files if len(names) > 1 else {})


def filter_none(values: Any) -> list[int]:
    """Return the values that are not None."""
    return [v for v in values if v is not None]


def _write_text(store: Any, fmt: str, table: str, query: QueryFilter, sink: comp.Sink, *, pretty: bool,
                delimiter: str, header: bool, progress: Progress | None) -> int:
    if table == "sessions":
        return write_csv_rows(SESSION_COLUMNS, map(session_row, _sessions(store, query)), sink,
                              delimiter=delimiter, header=header, progress=progress)
    if fmt == "otlp":
        return write_otlp(_stream(store, query), sink, progress)
    if fmt == "ndjson":
        return write_ndjson(_pages(store, query), sink, progress)
    if fmt == "csv":
        return write_csv(_pages(store, query), sink, delimiter=delimiter, header=header, progress=progress)
    meta = {"tool": "vibekit-telemetry", "schema_version": SCHEMA_VERSION, "format": "json",
            "exported_at": int(time.time() * 1000), "filter": _filter_dict(query)}
    return write_json(_pages(store, query), sink, meta, pretty=pretty, progress=progress)


def _filter_dict(query: QueryFilter) -> dict[str, Any]:
    """The filter as given (empty parts left out), for the JSON header."""
    return {k: v for k, v in asdict(query).items() if v not in (None, [], {}, 0) and k != "order"}
