"""Convert an export file from one format to another without a store, streaming record by record."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ..errors import ValidationError
from ..events import TelemetryEvent, coerce_event, validate_event
from .exports import ExportResult, check_format
from .readers import BadRecord, ImportFileError, detect_format, read_records
from .writers import Progress


def _events(path: str, fmt: str, delimiter: str | None) -> Iterator[TelemetryEvent]:
    for where, record in read_records(path, fmt, delimiter=delimiter):
        if isinstance(record, BadRecord):
            raise ImportFileError(path, where, record.reason)
        try:
            yield validate_event(coerce_event(record), require_session=False)
        except ValidationError as exc:
            raise ImportFileError(path, where, str(exc)) from None


class _FileSource:
    """The iter_events side of a file, so the export writers take it like a store."""

    def __init__(self, path: str, fmt: str, delimiter: str | None) -> None:
        self.path, self.fmt, self.delimiter = path, fmt, delimiter

    def iter_events(self, filter_: object, chunk_size: int = 1000) -> Iterator[TelemetryEvent]:
        """Yield the file's events in file order (the filter is the empty one)."""
        return _events(self.path, self.fmt, self.delimiter)


def convert(input_path: str, output_path: str, *, from_format: str | None = None, to_format: str | None = None,
            compression: str | None = None, delimiter: str | None = None, out_delimiter: str = ",",
            pretty: bool = False, progress: Progress | None = None) -> ExportResult:
    """Read `input_path` (format detected unless given) and write it to `output_path` in `to_format`."""
    from .exports import export_events

    if not isinstance(input_path, str) or not os.path.isfile(input_path):
        raise ValidationError("input", "an existing file", input_path)
    source_fmt = check_format(from_format, "from") if from_format else detect_format(input_path)
    if to_format is None:
        to_format = detect_format_name(output_path)
    target = check_format(to_format, "to")
    if os.path.abspath(input_path) == os.path.abspath(output_path):
        raise ValidationError("output", "a file other than the input", output_path)
    return export_events(_FileSource(input_path, source_fmt, delimiter), target, output_path=output_path,
                         compression=compression, pretty=pretty, delimiter=out_delimiter, progress=progress)


def detect_format_name(path: str) -> str:
    """Return the format an output file name asks for (events.csv.gz -> csv)."""
    from . import compression as comp

    ext = os.path.splitext(comp.strip_extension(path))[1].lower()
    names = {".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv", ".parquet": "parquet"}
    if ext not in names:
        raise ValidationError("to", "a format (json, ndjson, csv, parquet, otlp), or an output name ending "
                              "in one", path)
    return names[ext]
