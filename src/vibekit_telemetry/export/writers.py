"""Format writers: events streamed chunk by chunk into JSON, NDJSON, CSV, Parquet or OTLP JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any, Final, TypeVar

from ..errors import ValidationError
from ..events import TelemetryEvent
from .compression import Sink
from .records import EVENT_COLUMNS, event_record, event_row

FORMATS: Final = ("json", "ndjson", "csv", "parquet", "otlp")
FORMAT_EXTENSIONS: Final = {"json": ".json", "ndjson": ".ndjson", "csv": ".csv", "parquet": ".parquet",
                            "otlp": ".json"}
PARQUET_CODECS: Final = ("snappy", "zstd", "gzip", "brotli", "none")
CHUNK: Final = 5000
# Rows per Parquet row group: large enough for good compression, small enough to keep RSS flat.
PARQUET_ROWS: Final = 10_000

Progress = Callable[[int], None]
T = TypeVar("T")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield lists of up to `size` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _json_encoder() -> Callable[[Any], bytes]:
    try:
        import orjson  # the export extra: several times faster than the stdlib for the same bytes
    except ImportError:
        def encode(value: Any) -> bytes:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return encode
    dumps = orjson.dumps
    return dumps  # type: ignore[no-any-return]


def write_ndjson(events: Iterable[TelemetryEvent], sink: Sink, progress: Progress | None = None) -> int:
    """Write one JSON object per line; return how many events were written."""
    encode = _json_encoder()
    count = 0
    for chunk in chunked(events):
        sink.write(b"".join(encode(event_record(e)) + b"\n" for e in chunk))
        count += len(chunk)
        if progress:
            progress(count)
    return count


def write_json(events: Iterable[TelemetryEvent], sink: Sink, header: dict[str, Any], *, pretty: bool = False,
               progress: Progress | None = None) -> int:
    """Write {"export": header, "events": [...], "counts": {...}}: one event per line, or indented when pretty.

    The counts come last: the events are streamed, so their number is known only once they are written.
    """
    encode = _json_encoder()
    sink.write(b'{"export": ' + json.dumps(header, ensure_ascii=False).encode() + b', "events": [\n')
    count = 0
    for chunk in chunked(events):
        if pretty:
            parts = [json.dumps(event_record(e), ensure_ascii=False, indent=2).replace("\n", "\n  ").encode()
                     for e in chunk]
            body = b",\n  ".join(parts)
            sink.write((b",\n  " if count else b"  ") + body)
        else:
            body = b",\n".join(encode(event_record(e)) for e in chunk)
            sink.write((b",\n" if count else b"") + body)
        count += len(chunk)
        if progress:
            progress(count)
    sink.write(b'\n], "counts": ' + json.dumps({"events": count}).encode() + b"}\n")
    return count


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
    count = 0
    if header:
        sink.write((delimiter.join(columns) + "\r\n").encode())
    for chunk in chunked(rows):
        text = "".join(delimiter.join(map(_csv_cell, row)) + "\r\n" for row in chunk)
        sink.write(text.encode("utf-8"))
        count += len(chunk)
        if progress:
            progress(count)
    return count


def write_csv(events: Iterable[TelemetryEvent], sink: Sink, *, delimiter: str = ",", header: bool = True,
              progress: Progress | None = None) -> int:
    """Write events as CSV, metadata and context as JSON text."""
    return write_csv_rows(EVENT_COLUMNS, map(event_row, events), sink, delimiter=delimiter, header=header,
                          progress=progress)


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


def write_parquet(events: Iterable[TelemetryEvent], raw: IO[bytes], *, codec: str = "snappy",
                  progress: Progress | None = None) -> int:
    """Write events as Parquet, one row group per chunk; return how many were written."""
    pa = require_pyarrow()
    if codec not in PARQUET_CODECS:
        raise ValidationError("compression", "for Parquet one of " + ", ".join(PARQUET_CODECS), codec)
    schema = parquet_schema()
    count = 0
    with pa.parquet.ParquetWriter(raw, schema, compression=codec) as writer:
        for chunk in chunked(events, PARQUET_ROWS):
            rows = [event_row(e) for e in chunk]
            columns = [pa.array([row[i] for row in rows], type=schema.field(i).type)
                       for i in range(len(EVENT_COLUMNS))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            count += len(chunk)
            if progress:
                progress(count)
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
