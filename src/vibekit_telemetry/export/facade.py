"""The export, import and schedule methods of Telemetry (mixed into service.Telemetry)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..config import TelemetryConfig
    from ..runtime import Runtime
    from ..store.base import QueryableStore
    from .exports import ExportResult
    from .importer import ImportReport
    from .schedule import ExportSchedule


class ExportMethods:
    """Telemetry.export / import_file / migrate_legacy / create_export_schedule."""

    if TYPE_CHECKING:
        config: TelemetryConfig

        @property
        def runtime(self) -> Runtime | None: ...

        @property
        def store(self) -> QueryableStore: ...

        def flush(self, timeout: float | None = 10.0) -> bool: ...

    def _recording(self, what: str) -> Runtime:
        runtime = self.runtime
        if runtime is None:
            raise ValidationError(what, "a recording Telemetry (this one is disabled: disabled=True, "
                                  "TELEMETRY_DISABLED or DO_NOT_TRACK)")
        return runtime

    def export(self, format: str, filter: Mapping[str, Any] | None = None, *, output_path: str | None = None,
               compression: str | None = None, pretty: bool = False, delimiter: str = ",", header: bool = True,
               tables: str | Sequence[str] | None = None,
               progress: Callable[[int], None] | None = None,
               storage_options: Mapping[str, Any] | None = None) -> ExportResult:
        """Export the stored events matching `filter` to a file (default: in exports.export_dir); see docs/export.md."""
        from .exports import check_format, export_events
        from .writers import FORMAT_EXTENSIONS

        fmt = check_format(format)
        if output_path is None:
            os.makedirs(self.config.exports.export_dir, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            output_path = os.path.join(self.config.exports.export_dir, f"events-{stamp}{FORMAT_EXTENSIONS[fmt]}")
        self.flush()  # what was tracked before the call is in the export

        def run(chosen: Mapping[str, Any] | None) -> ExportResult:
            return export_events(self.store, fmt, output_path=output_path, filter=chosen, compression=compression,
                                 pretty=pretty, delimiter=delimiter, header=header, tables=tables,
                                 progress=progress, storage_options=storage_options)

        plugins = getattr(self.runtime, "plugins", None)  # before/after_export hooks (issue 15)
        return run(filter) if plugins is None else plugins.around_export(fmt, filter, run)  # type: ignore[no-any-return]

    def import_file(self, path: str, *, format: str | None = None,
                    transform: Callable[[dict[str, Any]], dict[str, Any] | None] | str | None = None,
                    skip_invalid: bool = False, delimiter: str | None = None,
                    storage_options: Mapping[str, Any] | None = None) -> ImportReport:
        """Import an export file (or fsspec URL) through the processing chain, durably, skipping stored events."""
        from .importer import import_file

        return import_file(self._recording("import"), path, fmt=format, transform=transform,
                           skip_invalid=skip_invalid, delimiter=delimiter, storage_options=storage_options)

    def migrate_legacy(self, path: str, *, skip_invalid: bool = True) -> ImportReport:
        """Import a legacy database (seed 003 `telemetry` table or seed 002 `telemetry_events`)."""
        from .legacy import migrate_legacy

        return migrate_legacy(self._recording("migrate"), path, skip_invalid=skip_invalid)

    def create_export_schedule(self, name: str, *, format: str, every: str | float, output_dir: str,
                               keep: int = 7, compression: str | None = None,
                               filter: Mapping[str, Any] | None = None) -> ExportSchedule:
        """Export new events every `every` (e.g. "24h") into output_dir, keeping the newest `keep` files."""
        from .schedule import make_schedule

        schedule = make_schedule(name, format=format, every=every, output_dir=output_dir, keep=keep,
                                 compression=compression, filter=filter)
        return self._recording("schedule").exports().add(schedule)
