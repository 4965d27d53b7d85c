"""Scheduled exports (seed 000 ExportScheduler): a scheduler job per schedule, new events only, old files pruned.

Each run exports the events timestamped since the previous run's window end up to now, into
`{name}-{YYYYmmddTHHMMSS.fffZ}{ext}` (the window end, UTC) in the output directory, then deletes all but the
newest `keep` files of the schedule. The previous window end is read back from the newest file's
name, so no state is kept anywhere else; with no file yet, the first run exports everything.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ..errors import ValidationError
from ..query import parse_query
from ..timeparse import duration_ms
from . import compression as comp
from .exports import ExportResult, check_format, export_events
from .writers import FORMAT_EXTENSIONS

logger = logging.getLogger("vibekit_telemetry")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_STAMP: Final = "%Y%m%dT%H%M%S"


@dataclass(slots=True)
class ExportSchedule:
    """One scheduled export: what, how often, where, how many files to keep."""

    name: str
    format: str
    every_s: float
    output_dir: str
    keep: int = 7
    compression: str | None = None
    filter: dict[str, Any] = field(default_factory=dict)

    def file_pattern(self) -> re.Pattern[str]:
        """The names of this schedule's files, the window end captured."""
        return re.compile(rf"^{re.escape(self.name)}-(\d{{8}}T\d{{6}}\.\d{{3}}Z)\.")


def make_schedule(name: str, *, format: str, every: str | float, output_dir: str, keep: int = 7,
                  compression: str | None = None, filter: Mapping[str, Any] | None = None,
                  field_prefix: str = "") -> ExportSchedule:
    """Validate and build a schedule; ValidationError naming the field."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"{field_prefix}name", "letters, digits, '-', '_' or '.' (a file name prefix)", name)
    fmt = check_format(format, f"{field_prefix}format")
    if isinstance(every, bool) or not isinstance(every, int | float | str):
        raise ValidationError(f"{field_prefix}every", "a duration such as 15m, 24h or seconds", every)
    every_s = duration_ms(every, f"{field_prefix}every") / 1000 if isinstance(every, str) else float(every)
    if every_s < 1:
        raise ValidationError(f"{field_prefix}every", "at least one second", every)
    if not isinstance(output_dir, str) or not output_dir:
        raise ValidationError(f"{field_prefix}output_dir", "a directory", output_dir)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValidationError(f"{field_prefix}keep", "an integer of at least 1", keep)
    if fmt != "parquet":
        comp.normalise(compression, f"{field_prefix}compression")
    query = dict(filter or {})
    parse_query(query)  # refuse a bad filter now, not at the first run
    return ExportSchedule(name, fmt, every_s, output_dir, keep, compression, query)


def _files(schedule: ExportSchedule) -> list[tuple[str, str]]:
    """(stamp, file name) of the schedule's files, oldest first."""
    if not os.path.isdir(schedule.output_dir):
        return []
    pattern = schedule.file_pattern()
    found = [(m.group(1), entry) for entry in os.listdir(schedule.output_dir) if (m := pattern.match(entry))]
    return sorted(found)


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime(_STAMP) + f".{ms % 1000:03d}Z"


def _parse_stamp(stamp: str) -> int:
    seconds, millis = stamp.rstrip("Z").split(".")
    return int(datetime.strptime(seconds, _STAMP).replace(tzinfo=UTC).timestamp()) * 1000 + int(millis)


def run_schedule(store: Any, schedule: ExportSchedule, *, now_ms: int | None = None) -> ExportResult:
    """Export the events since the previous run into a new file, then prune the oldest files."""
    os.makedirs(schedule.output_dir, exist_ok=True)
    until = int(time.time() * 1000) if now_ms is None else now_ms
    files = _files(schedule)
    since = _parse_stamp(files[-1][0]) if files else None
    if since is not None and since >= until:
        until = since + 1  # two runs within one millisecond: the next window, empty so far
    ext = FORMAT_EXTENSIONS[schedule.format]
    if schedule.format != "parquet" and schedule.compression not in (None, "none"):
        ext += comp.SUFFIX[comp.normalise(schedule.compression) or "none"]
    path = os.path.join(schedule.output_dir, f"{schedule.name}-{_stamp(until)}{ext}")
    window = {**schedule.filter, "since": since, "until": until - 1}
    result = export_events(store, schedule.format, output_path=path, filter=window,
                           compression=schedule.compression)
    for _, old in _files(schedule)[:-schedule.keep]:
        try:
            os.unlink(os.path.join(schedule.output_dir, old))
        except OSError as exc:
            logger.warning("telemetry export %s: could not delete old file %s: %s", schedule.name, old, exc)
    return result


class ExportScheduler:
    """Registers schedules as jobs on a Scheduler (the Runtime's, or `telemetry schedule run`'s own)."""

    def __init__(self, scheduler: Any, store_of: Callable[[], Any]) -> None:
        self.scheduler = scheduler
        self.store_of = store_of
        self.schedules: dict[str, ExportSchedule] = {}
        self.last: dict[str, ExportResult] = {}

    def add(self, schedule: ExportSchedule, *, run_first_in: float | None = None) -> ExportSchedule:
        """Run the schedule every `every_s` seconds from now (first after run_first_in seconds, if given)."""
        self.schedules[schedule.name] = schedule
        self.scheduler.every(f"export:{schedule.name}", schedule.every_s, lambda: self.run(schedule.name),
                             first_in=run_first_in)
        return schedule

    def run(self, name: str) -> ExportResult:
        """Run one schedule now."""
        result = run_schedule(self.store_of(), self.schedules[name])
        self.last[name] = result
        return result
