"""Import: records from a file (or a legacy database) through the one processing chain, durably, once.

Two passes over the source, so a bad record anywhere means nothing is imported (unless skip_invalid):
the first validates every record with the same event model as track(); the second runs the chain
(runtime.process_now) chunk by chunk and waits for each chunk's durable commit
(runtime.submit_processed, urgent). Events are idempotent by event_id: ids the store already holds
are skipped, records without one get an id derived from their content.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import StoreError, ValidationError
from ..events import coerce_event, validate_event
from ..processing import BatchValidationError
from ..store.base import EventLookup
from .output import local_copy
from .readers import READ_FORMATS, BadRecord, ImportFileError, Record, detect_format, read_records
from .records import content_event_id

if TYPE_CHECKING:
    from ..runtime import Runtime

Transform = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Progress = Callable[[int], None]
CHUNK: Final = 1000
MAX_LISTED: Final = 100
COMMIT_TIMEOUT_S: Final = 120.0


@dataclass(slots=True)
class ImportReport:
    """What an import did: records read, imported, skipped (already stored, or dropped) and rejected."""

    read: int = 0
    imported: int = 0
    skipped: int = 0
    filtered: int = 0
    dropped_by_processors: int = 0
    rejected: int = 0
    # (place in the file, reason) for the first MAX_LISTED rejected records.
    rejections: list[tuple[str, str]] = field(default_factory=list)
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a plain dict."""
        return asdict(self)

    def reject(self, where: str, reason: str) -> None:
        """Count a rejected record and keep its reason (the first MAX_LISTED)."""
        self.rejected += 1
        if len(self.rejections) < MAX_LISTED:
            self.rejections.append((where, reason))


class ImportRejectedError(ValidationError):
    """Invalid records in the source: nothing was imported. `report` lists them."""

    def __init__(self, source: str, report: ImportReport) -> None:
        where, reason = report.rejections[0]
        more = f" (and {report.rejected - 1} more)" if report.rejected > 1 else ""
        super().__init__("file", "valid events", message=(
            f"{source}: {where}: {reason}{more}; nothing was imported (use skip_invalid / --skip-invalid "
            "to import the valid records and report the rest)"))
        self.report = report


def load_transform(path: str) -> Transform:
    """Load `transform(record) -> record | None` from a Python file."""
    if not isinstance(path, str) or not os.path.isfile(path):
        raise ValidationError("transform", "a Python file defining transform(record)", path)
    spec = importlib.util.spec_from_file_location("vibekit_telemetry_import_transform", path)
    if spec is None or spec.loader is None:
        raise ValidationError("transform", "a Python file defining transform(record)", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    function = getattr(module, "transform", None)
    if not callable(function):
        raise ValidationError("transform", "a file defining a function transform(record) -> record | None", path)
    return function  # type: ignore[no-any-return]


def _prepare(where: str, record: dict[str, Any], transform: Transform | None) -> dict[str, Any] | None:
    """Apply the transform and give an id to a record without one; ValidationError when it is not an event."""
    if isinstance(record, BadRecord):
        raise ValidationError("record", record.reason, message=record.reason)
    if transform is not None:
        try:
            out = transform(dict(record))
        except Exception as exc:
            raise ValidationError("transform", f"a record or None ({type(exc).__name__}: {exc})",
                                  message=f"transform failed: {type(exc).__name__}: {exc}") from None
        if out is None:
            return None
        if not isinstance(out, dict):
            raise ValidationError("transform", "a dict or None from transform()", out)
        record = out
    if not (record.get("event_id") or record.get("eventId") or record.get("id")):
        record = {**record, "event_id": content_event_id(record)}
    return record


def _check(record: dict[str, Any]) -> None:
    """Validate like track() does, on a copy (the chain validates again on the real pass)."""
    validate_event(coerce_event(dict(record)), require_session=True)


def import_records(runtime: Runtime, source: str, records: Callable[[], Iterable[Record]], *,
                   transform: Transform | None = None, skip_invalid: bool = False,
                   progress: Progress | None = None, report: ImportReport | None = None) -> ImportReport:
    """Validate every record, then import them through the chain in durable chunks; return the report.

    `records` is called twice (one pass each).
    """
    report = report or ImportReport()
    invalid: set[str] = set()
    for where, record in records():
        report.read += 1
        try:
            prepared = _prepare(where, record, transform)
            if prepared is not None:
                _check(prepared)
        except ValidationError as exc:
            report.reject(where, str(exc))
            invalid.add(where)
    if report.rejected and not skip_invalid:
        raise ImportRejectedError(source, report)
    store = runtime.store
    chunk: list[tuple[str, dict[str, Any]]] = []
    done = 0
    for where, record in records():
        if where in invalid:
            continue
        prepared = _prepare(where, record, transform)
        if prepared is None:
            report.filtered += 1
            continue
        chunk.append((where, prepared))
        if len(chunk) >= CHUNK:
            done += _commit(runtime, store, chunk, report)
            chunk = []
            if progress:
                progress(done)
    if chunk:
        done += _commit(runtime, store, chunk, report)
        if progress:
            progress(done)
    return report


def _event_id(record: dict[str, Any]) -> str:
    return str(record.get("event_id") or record.get("eventId") or record.get("id"))


def _commit(runtime: Runtime, store: Any, chunk: list[tuple[str, dict[str, Any]]], report: ImportReport) -> int:
    """Run the chain on one chunk, queue it as one ticket and wait for its commit."""
    seen: set[str] = set()
    fresh: list[tuple[str, dict[str, Any]]] = []
    existing = store.existing_event_ids([_event_id(r) for _, r in chunk]) if isinstance(store, EventLookup) \
        else set()
    for where, record in chunk:
        eid = _event_id(record)
        if eid in existing or eid in seen:
            report.skipped += 1
            continue
        seen.add(eid)
        fresh.append((where, record))
    while fresh:
        try:
            events = runtime.process_now([record for _, record in fresh])
        except BatchValidationError as exc:
            bad = {index for index, _ in exc.errors}
            for index, error in exc.errors:
                report.reject(fresh[index][0], str(error))
            fresh = [item for index, item in enumerate(fresh) if index not in bad]
            continue
        except ValidationError as exc:
            report.reject(fresh[0][0], str(exc))
            fresh = fresh[1:]
            continue
        report.dropped_by_processors += len(fresh) - len(events)
        if events:
            ticket = runtime.submit_processed(events, urgent=True)
            if ticket is None:
                raise StoreError(f"the write queue refused {len(events)} imported events; run the import again "
                                 "(what was committed is skipped)")
            if not ticket.wait(COMMIT_TIMEOUT_S):
                raise StoreError(f"the store did not commit imported events ({ticket.error or 'timeout'}); "
                                 "run the import again (what was committed is skipped)")
        report.imported += len(events)
        break
    return len(chunk)


def import_file(runtime: Runtime, path: str, *, fmt: str | None = None, transform: Transform | str | None = None,
                skip_invalid: bool = False, delimiter: str | None = None, progress: Progress | None = None,
                storage_options: Mapping[str, Any] | None = None) -> ImportReport:
    """Import an export file (json, ndjson, csv, parquet, otlp; compressed or not; a path or an fsspec URL)."""
    if not isinstance(path, str) or not path:
        raise ValidationError("file", "an existing file", path)
    if fmt is not None and (not isinstance(fmt, str) or fmt.lower() not in READ_FORMATS):
        raise ValidationError("format", ", ".join(READ_FORMATS), fmt)
    function = load_transform(transform) if isinstance(transform, str) else transform
    # A URL is downloaded once to a temporary file: the import reads its source twice.
    with local_copy(path, storage_options) as local:
        if not os.path.isfile(local):
            raise ValidationError("file", "an existing file", path)
        chosen = (fmt or detect_format(local)).lower()

        def records() -> Iterator[Record]:
            return read_records(local, chosen, delimiter=delimiter)

        try:
            return import_records(runtime, path, records, transform=function, skip_invalid=skip_invalid,
                                  progress=progress, report=ImportReport(format=chosen))
        except ImportFileError as exc:
            if local == path:
                raise
            raise ImportFileError(path, exc.where, exc.expected) from None  # the URL, not the download
