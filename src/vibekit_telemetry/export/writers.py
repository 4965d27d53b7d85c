"""Format writers: pages of raw event rows into JSON, NDJSON, CSV or Parquet; events into OTLP JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, Final, TypeVar

from ..errors import ValidationError
from ..events import TelemetryEvent
from .arrow_columns import page_columns
from .compression import Sink
from .records import EVENT_COLUMNS

FORMATS: Final = ("json", "ndjson", "csv", "parquet", "otlp")
FORMAT_EXTENSIONS: Final = {"json": ".json", "ndjson": ".ndjson", "csv": ".csv", "parquet": ".parquet",
                            "otlp": ".json"}
PARQUET_CODECS: Final = ("snappy", "zstd", "gzip", "brotli", "none")
# Rows per page read from the store, and per Parquet row group: large enough for good compression and
# few queries, small enough to keep RSS flat.
CHUNK: Final = 5000
PARQUET_ROWS: Final = 10_000

Progress = Callable[[int], None]
T = TypeVar("T")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield lists of up to `size` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


Page = Sequence[Sequence[Any]]  # rows of values in EVENT_COLUMNS order (metadata and context as JSON text)
_META_AT: Final = EVENT_COLUMNS.index("metadata")
_CTX_AT: Final = EVENT_COLUMNS.index("context")


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _page_encoder(newline: bool) -> Callable[[Page], bytes]:
    """Return a function turning a page of rows into compact JSON objects, one per row, as one bytes.

    newline: each object ends with a line feed (NDJSON); else they are separated by ",\n" (JSON).
    The objects are copied into one buffer as they are made: a list of orjson's results kept their
    oversized allocations alive until the page was joined, and the heap grew and shrank by tens of
    MB per page (two page faults per row, as much system time as the encoding itself).
    """
    try:
        import orjson  # the export extra: several times faster than the stdlib for the same bytes
    except ImportError:
        def encode_stdlib(page: Page) -> bytes:
            if not page:
                return b""
            out = []
            for row in page:
                record = dict(zip(EVENT_COLUMNS, row, strict=True))
                record["metadata"], record["context"] = _loads(row[_META_AT]), _loads(row[_CTX_AT])
                out.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            text = "\n".join(out) + "\n" if newline else ",\n".join(out)
            return text.encode("utf-8")
        return encode_stdlib
    # Fragment (newer orjson) embeds JSON text as it is; parsing it is the same output, slower.
    dumps, fragment, columns = orjson.dumps, getattr(orjson, "Fragment", orjson.loads), EVENT_COLUMNS
    option = orjson.OPT_APPEND_NEWLINE if newline else 0

    def encode(page: Page) -> bytes:
        buffer = bytearray()
        for row in page:
            record = dict(zip(columns, row, strict=True))
            # The stored JSON text goes into the output as it is: parsing it only to write it again
            # was most of an export's time.
            if (meta := row[_META_AT]) is not None:
                record["metadata"] = fragment(meta)
            if (ctx := row[_CTX_AT]) is not None:
                record["context"] = fragment(ctx)
            buffer += dumps(record, option=option)
            if not newline:
                buffer += b",\n"
        if not newline and buffer:
            del buffer[-2:]
        return bytes(buffer)
    return encode


def _count(pages: Iterable[Page], progress: Progress | None) -> Iterator[Page]:
    """Pass the pages through, reporting the running row count to `progress`."""
    done = 0
    for page in pages:
        yield page
        done += len(page)
        if progress:
            progress(done)


def write_ndjson(pages: Iterable[Page], sink: Sink, progress: Progress | None = None) -> int:
    """Write one JSON object per line; return how many events were written."""
    encode = _page_encoder(newline=True)
    count = 0
    for page in _count(pages, progress):
        sink.write(encode(page))
        count += len(page)
    return count


def write_json(pages: Iterable[Page], sink: Sink, header: dict[str, Any], *, pretty: bool = False,
               progress: Progress | None = None) -> int:
    """Write {"export": header, "events": [...], "counts": {...}}: one event per line, or indented when pretty.

    The counts come last: the events are streamed, so their number is known only once they are written.
    """
    encode = _page_encoder(newline=False)
    sink.write(b'{"export": ' + json.dumps(header, ensure_ascii=False).encode() + b', "events": [\n')
    count = 0
    for page in _count(pages, progress):
        if not page:
            continue
        if pretty:
            parts = [json.dumps(pretty_record(row), ensure_ascii=False, indent=2).replace("\n", "\n  ").encode()
                     for row in page]
            sink.write((b",\n  " if count else b"  ") + b",\n  ".join(parts))
        else:
            if count:
                sink.write(b",\n")
            sink.write(encode(page))
        count += len(page)
    sink.write(b'\n], "counts": ' + json.dumps({"events": count}).encode() + b"}\n")
    return count


def pretty_record(row: Sequence[Any]) -> dict[str, Any]:
    """Return a row as an event dict, metadata and context parsed (for indented JSON)."""
    record = dict(zip(EVENT_COLUMNS, row, strict=True))
    record["metadata"], record["context"] = _loads(row[_META_AT]), _loads(row[_CTX_AT])
    return record


def check_delimiter(delimiter: str) -> str:
    """Return a usable CSV delimiter (`semicolon`, `tab`, `comma` accepted by name)."""
    named = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|", "\\t": "\t"}
    delimiter = named.get(delimiter, delimiter) if isinstance(delimiter, str) else delimiter
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ValidationError("delimiter", "one character other than a quote or a line break "
                              "(or comma, semicolon, tab, pipe)", delimiter)
    return delimiter


def _csv_cell(value: Any) -> str:
    # Text is always quoted and a missing value never is, so an empty text and no value stay apart
    # on the way back; spreadsheets and pandas read both as empty.
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], sink: Sink, *, delimiter: str = ",",
                   header: bool = True, progress: Progress | None = None) -> int:
    """Write rows as RFC 4180 CSV (CRLF line ends), UTF-8; return how many rows were written."""
    return write_csv(chunked(rows), sink, columns=columns, delimiter=delimiter, header=header, progress=progress)


def write_csv(pages: Iterable[Page], sink: Sink, *, columns: Sequence[str] = EVENT_COLUMNS, delimiter: str = ",",
              header: bool = True, progress: Progress | None = None) -> int:
    """Write pages of rows as CSV (metadata and context as JSON text); return how many rows were written."""
    count = 0
    if header:
        sink.write((delimiter.join(columns) + "\r\n").encode())
    cell = _csv_cell
    for page in _count(pages, progress):
        text = "".join(delimiter.join(map(cell, row)) + "\r\n" for row in page)
        sink.write(text.encode("utf-8"))
        count += len(page)
    return count


def parquet_schema() -> Any:
    """Return the typed pyarrow schema of exported events."""
    pa = require_pyarrow()
    types = {"timestamp": pa.int64(), "value": pa.float64(), "duration": pa.float64()}
    return pa.schema([(name, types.get(name, pa.string())) for name in EVENT_COLUMNS],
                     metadata={b"vibekit_telemetry.schema_version": b"1"})


def require_pyarrow() -> Any:
    """Return the pyarrow module, or a ValidationError saying which extra brings it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ValidationError("format", "pyarrow for Parquet (pip install 'vibekit-telemetry[export]')",
                              "parquet") from None
    return pyarrow


def write_parquet(pages: Iterable[Page], raw: IO[bytes], *, codec: str = "snappy",
                  progress: Progress | None = None) -> int:
    """Write pages of rows as Parquet, columns built straight from the rows, PARQUET_ROWS per row group."""
    pa = require_pyarrow()
    if codec not in PARQUET_CODECS:
        raise ValidationError("compression", "for Parquet one of " + ", ".join(PARQUET_CODECS), codec)
    schema = parquet_schema()
    types = [schema.field(i).type for i in range(len(EVENT_COLUMNS))]
    count = 0
    # Pages become Arrow tables at once (compact buffers, the Python rows are dropped), and are
    # written a row group of PARQUET_ROWS at a time: pages of that size would hold a few times more
    # memory as Python tuples, and row groups of one page compressed twice as badly.
    held: list[Any] = []
    rows_held = 0
    with pa.parquet.ParquetWriter(raw, schema, compression=codec) as writer:
        for page in _count(pages, progress):
            if not page:
                continue
            held.append(pa.Table.from_arrays(page_columns(pa, types, page), schema=schema))
            rows_held += len(page)
            count += len(page)
            if rows_held >= PARQUET_ROWS:
                writer.write_table(pa.concat_tables(held), row_group_size=rows_held)
                held, rows_held = [], 0
        if held:
            writer.write_table(pa.concat_tables(held), row_group_size=rows_held)
    return count


def otlp_encoder() -> Callable[[list[TelemetryEvent]], dict[str, Any]]:
    """Return the OTLP encoder (vibekit_telemetry.otlp.encode), or a ValidationError when it is absent."""
    try:
        from ..otlp.encode import encode_traces_json  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise ValidationError("format", "the OTLP encoder (vibekit_telemetry.otlp), not in this installation",
                              "otlp") from None
    return encode_traces_json  # type: ignore[no-any-return]


def write_otlp(events: Iterable[TelemetryEvent], sink: Sink, progress: Progress | None = None) -> int:
    """Write the events as one OTLP/JSON TracesData document (sessions as spans, events as span events).

    A span covers a whole session, so the selected events are held together: select with sessions or a
    time range for large stores.
    """
    encode = otlp_encoder()
    selected = list(events)
    try:
        document = encode(selected)
    except ImportError as exc:  # the encoder imports the OpenTelemetry protobuf classes when first used
        raise ValidationError("format", "the `otlp` extra for OTLP (pip install 'vibekit-telemetry[otlp]')",
                              str(exc)) from None
    sink.write(json.dumps(document, ensure_ascii=False).encode("utf-8"))
    if progress:
        progress(len(selected))
    return len(selected)
