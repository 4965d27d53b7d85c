"""`export`, `convert`, `import`, `migrate-legacy` and `schedule run`: data in and out of the store (issue 11)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..export.compression import COMPRESSIONS
from ..export.readers import READ_FORMATS
from ..export.writers import FORMATS, PARQUET_CODECS
from ..store.base import EventIterable
from .context import TelemetryCommand, TelemetryGroup, open_store, open_telemetry
from .options import build_query_kwargs, console, database_options, event_filter_options, split_list

_COMPRESS_HELP = ("File compression: " + ", ".join(COMPRESSIONS) + " [default: from the file extension]; "
                  "for parquet the codec inside the file: " + ", ".join(PARQUET_CODECS) + " [default: snappy].")


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A progress line on stderr (a terminal only): records done so far and the rate."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    err = console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)


def _report(payload: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        click.echo(json.dumps(payload, default=str))
    else:
        click.echo(text)


@click.command("export", cls=TelemetryCommand)
@click.option("--format", "fmt", type=click.Choice(FORMATS, case_sensitive=False), default="json",
              show_default=True, help="Output format.")
@click.option("--endpoint", metavar="URL", help="With --format otlp: send the traces to this OTLP/HTTP endpoint "
              "(a base URL gets /v1/traces) instead of writing a file.")
@click.option("--output", "-o", "output", required=False, metavar="PATH",
              help="File to write (or an fsspec URL such as s3://bucket/key); written whole or not at all.")
@click.option("--compress", "--compression", "compress", metavar="NAME", help=_COMPRESS_HELP)
@click.option("--pretty", is_flag=True, help="Indent JSON.")
@click.option("--delimiter", default=",", show_default=True, help="CSV delimiter (a character, or comma, "
              "semicolon, tab, pipe).")
@click.option("--no-header", is_flag=True, help="CSV without the header row.")
@click.option("--tables", default="events", show_default=True,
              help="CSV: events and/or sessions, comma-separated; several give one file per table.")
@click.option("--sessions", "session_list", metavar="IDS", help="Only these sessions (comma-separated).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@event_filter_options
@database_options
def export_command(fmt: str, endpoint: str | None, output: str | None, compress: str | None, pretty: bool,
                   delimiter: str, no_header: bool, tables: str, session_list: str | None, as_json: bool,
                   **filter_options: Any) -> None:
    """Export events to JSON, NDJSON, CSV, Parquet or OTLP JSON, streamed from the store.

    \b
    Examples:
      telemetry export --format json --compress gzip --output events.json.gz --since 7d
      telemetry export --format csv --delimiter ';' --tables events,sessions --output data.csv
      telemetry export --format parquet --compression zstd --output events.parquet
      telemetry export --format otlp --sessions s1,s2 --output traces.json
      telemetry export --format otlp --endpoint http://collector:4318
    """
    from ..export.exports import export_events

    filters = build_query_kwargs(**filter_options)
    if session_list:
        filters["session_ids"] = [*filters.get("session_ids", []), *split_list([session_list])]
    if endpoint is not None:
        if fmt.lower() != "otlp":
            raise click.UsageError("--endpoint: sending is for --format otlp; other formats write a file")
        _send_otlp(endpoint, filters, as_json)
        return
    if not output:
        raise click.UsageError("--output: expected the file to write (or --format otlp --endpoint URL)")
    with open_store() as store, _progress(f"exporting {fmt}") as progress:
        result = export_events(store, fmt.lower(), output_path=output, filter=filters, compression=compress,
                               pretty=pretty, delimiter=delimiter, header=not no_header, tables=tables,
                               progress=progress)
    files = result.files or {"events": (result.path, result.record_count)}
    lines = [f"Exported {rows:,} {table} to {path}" for table, (path, rows) in files.items()]
    size = f" ({result.file_size:,} bytes, {result.duration_s:.1f} s)" if result.file_size is not None else ""
    _report(result.to_dict(), as_json, "\n".join(lines) + size)


def _send_otlp(endpoint: str, filters: dict[str, Any], as_json: bool) -> None:
    """Send the selected events as OTLP/HTTP protobuf traces to a collector (one request)."""
    import urllib.error
    import urllib.request

    from ..otlp.encode import encode_traces
    from ..otlp.settings import traces_url
    from ..query import parse_query

    url = traces_url(endpoint)
    if not url.startswith(("http://", "https://")):
        raise click.UsageError(f"--endpoint: expected an http:// or https:// URL, got {endpoint!r}")
    with open_store() as store:
        events = list(store.iter_events(parse_query(**filters))) if isinstance(store, EventIterable) \
            else store.query(parse_query(**filters))
    if not events:
        _report({"sent": 0, "endpoint": url}, as_json, "No events match: nothing sent.")
        return
    body = encode_traces(events).SerializeToString()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise click.ClickException(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot send to {url}: {getattr(exc, 'reason', exc)}") from None
    sessions = len({e.session_id for e in events})
    _report({"sent": len(events), "sessions": sessions, "endpoint": url, "status": status}, as_json,
            f"Sent {len(events):,} events ({sessions:,} sessions as traces) to {url}")


@click.command("convert", cls=TelemetryCommand)
@click.option("--input", "-i", "input_path", required=True, metavar="PATH", help="The file to read.")
@click.option("--output", "-o", "output", required=True, metavar="PATH", help="The file to write.")
@click.option("--from", "from_format", type=click.Choice(FORMATS, case_sensitive=False),
              help="Input format [default: detected from the extension and content].")
@click.option("--to", "to_format", type=click.Choice(FORMATS, case_sensitive=False),
              help="Output format [default: from the output's extension].")
@click.option("--compress", "--compression", "compress", metavar="NAME", help=_COMPRESS_HELP)
@click.option("--delimiter", default=",", show_default=True, help="Delimiter of a CSV output.")
@click.option("--pretty", is_flag=True, help="Indent JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def convert_command(input_path: str, output: str, from_format: str | None, to_format: str | None,
                    compress: str | None, delimiter: str, pretty: bool, as_json: bool) -> None:
    """Convert an export file to another format, record by record (no store involved)."""
    from ..export.convert import convert

    with _progress("converting") as progress:
        result = convert(input_path, output, from_format=from_format, to_format=to_format, compression=compress,
                         out_delimiter=delimiter, pretty=pretty, progress=progress)
    _report(result.to_dict(), as_json, f"Converted {result.record_count:,} events to {result.path} ({result.format})")


def _import_summary(report: Any, source: str) -> str:
    lines = [f"Imported {report.imported:,} of {report.read:,} records from {source}: "
             f"{report.skipped:,} skipped (already stored), {report.rejected:,} rejected"
             + (f", {report.filtered:,} dropped by the transform" if report.filtered else "")
             + (f", {report.dropped_by_processors:,} dropped by processors" if report.dropped_by_processors else "")]
    lines += [f"  rejected {where}: {reason}" for where, reason in report.rejections[:20]]
    if report.rejected > 20:
        lines.append(f"  … and {report.rejected - 20:,} more")
    return "\n".join(lines)


@click.command("import", cls=TelemetryCommand)
@click.option("--file", "-f", "path", required=True, metavar="PATH", help="The export file to import.")
@click.option("--format", "fmt", type=click.Choice(READ_FORMATS, case_sensitive=False),
              help="Input format [default: detected from the extension and content]; otlp reads OTLP/JSON "
              "(as `export --format otlp` writes) or protobuf.")
@click.option("--transform", metavar="SCRIPT.py",
              help="A Python file defining transform(record) -> record | None, applied to each record.")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid records and report the others (default: a bad record imports nothing).")
@click.option("--delimiter", help="CSV delimiter [default: detected from the header].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@database_options
def import_command(path: str, fmt: str | None, transform: str | None, skip_invalid: bool, delimiter: str | None,
                   as_json: bool) -> None:
    """Import events from an export file through the processing chain (idempotent by event_id)."""
    from ..export.importer import import_file

    with open_telemetry(must_exist=False) as telemetry, _progress("importing") as progress:
        runtime = telemetry.runtime
        if runtime is None:
            raise click.ClickException("tracking is disabled (TELEMETRY_DISABLED / DO_NOT_TRACK): "
                                       "nothing to import into")
        report = import_file(runtime, path, fmt=fmt.lower() if fmt else None, transform=transform,
                             skip_invalid=skip_invalid, delimiter=delimiter, progress=progress)
    _report(report.to_dict(), as_json, _import_summary(report, path))


@click.command("migrate-legacy", cls=TelemetryCommand)
@click.option("--from", "source", required=True, metavar="OLD.db",
              help="A database with the legacy `telemetry` table (seed 003) or `telemetry_events` (seed 002).")
@click.option("--strict", is_flag=True, help="Import nothing if any row is invalid (default: report and skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@database_options
def migrate_legacy_command(source: str, strict: bool, as_json: bool) -> None:
    """Import a legacy telemetry database; run it again to resume (rows already imported are skipped)."""
    from ..export.legacy import migrate_legacy

    with open_telemetry(must_exist=False) as telemetry, _progress("migrating") as progress:
        runtime = telemetry.runtime
        if runtime is None:
            raise click.ClickException("tracking is disabled (TELEMETRY_DISABLED / DO_NOT_TRACK): "
                                       "nothing to import into")
        report = migrate_legacy(runtime, source, skip_invalid=not strict, progress=progress)
    _report(report.to_dict(), as_json, _import_summary(report, source))


@click.group("schedule", cls=TelemetryGroup)
def schedule() -> None:
    """Scheduled exports (the `exports.schedules` of the configuration)."""


@schedule.command("run", cls=TelemetryCommand)
@click.option("--name", "names", multiple=True, help="Only this schedule (repeatable).")
@click.option("--loop", is_flag=True, help="Keep running each schedule at its interval until interrupted.")
@database_options
def schedule_run(names: tuple[str, ...], loop: bool) -> None:
    """Run the configured export schedules once now (or keep running them with --loop)."""
    with open_telemetry(must_exist=False) as telemetry:
        runtime = telemetry.runtime
        if runtime is None:
            raise click.ClickException("tracking is disabled (TELEMETRY_DISABLED / DO_NOT_TRACK)")
        exports = runtime.exports()
        chosen = list(names) or sorted(exports.schedules)
        unknown = [n for n in chosen if n not in exports.schedules]
        if unknown or not chosen:
            known = ", ".join(sorted(exports.schedules)) or "none configured (exports.schedules)"
            raise click.UsageError(f"--name: expected one of {known}, got {', '.join(unknown) or 'nothing'}")
        for name in chosen:
            result = exports.run(name)
            click.echo(f"{name}: {result.record_count:,} events to {result.path}")
        while loop:  # the runtime's scheduler runs the jobs; this thread only waits for Ctrl-C
            time.sleep(1)
