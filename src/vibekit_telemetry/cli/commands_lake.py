"""`lake`: questions over the usage batches (stats, query, export) with DuckDB, and `load` into the store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import ValidationError
from .context import TelemetryGroup, open_telemetry
from .options import console, database_options, echo_json, emit_rows, format_option, time_option_value

F = TypeVar("F", bound=Callable[..., Any])
LOAD_CHUNK = 1000


def _source_options(func: F) -> F:
    func = click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                        help="fsspec option for object storage, e.g. endpoint_url=http://127.0.0.1:9000 "
                             "(repeatable; values that read as JSON keep their type).")(func)
    func = click.option("--since", default=None, metavar="WHEN",
                        help="Only payloads from then on: 30d, yesterday, ISO date, epoch ms.")(func)
    return click.argument("source")(func)


def _lake(source: str, since: str | None, storage_options: tuple[str, ...]) -> Any:
    from ..usage.lake import Lake

    options: dict[str, Any] = {}
    for item in storage_options:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError("--storage-option", "KEY=VALUE", item)
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return Lake(source, since_ms=time_option_value(since, "--since"), storage_options=options)


@click.group(cls=TelemetryGroup)
def lake() -> None:
    """Usage batches (seed 004) in a directory or s3://bucket/prefix, read with DuckDB.

    \b
    Examples:
      telemetry lake stats ./batches --since 30d
      telemetry lake query ./batches "SELECT command, count(*) FROM usage GROUP BY 1"
      telemetry lake export ./batches -o usage.parquet --format parquet
      telemetry lake load ./batches            # into the selected database, for the dashboard
    """


@lake.command()
@_source_options
@format_option(("table", "json"))
def stats(source: str, since: str | None, storage_options: tuple[str, ...], fmt: str) -> None:
    """Commands per day, error rate and p50/p95 duration per command, errors, tokens, versions, active users."""
    report = _lake(source, since, storage_options).stats()
    if fmt == "json":
        echo_json(report)
        return
    titles = {"per_day": "Per day", "commands": "Commands", "errors": "Errors by type",
              "tokens": "Tokens by provider and model", "versions": "Versions in use"}
    for name, rows in report.items():
        columns = list(rows[0]) if rows else []
        emit_rows(rows, columns, "table", title=titles[name], empty=f"{titles[name]}: no payloads.")


@lake.command()
@_source_options
@click.argument("sql")
@format_option()
def query(source: str, since: str | None, storage_options: tuple[str, ...], sql: str, fmt: str) -> None:
    """Run SQL over the view `usage` (seed 004's fields, plus `ts` as a UTC timestamp)."""
    lake_ = _lake(source, since, storage_options)
    try:
        columns, rows = lake_.query(sql)
    except Exception as exc:  # a DuckDB error in the user's SQL: one line, exit 1
        if type(exc).__module__.startswith("duckdb") or type(exc).__module__ == "_duckdb":
            raise click.ClickException(f"query failed: {str(exc).splitlines()[0]}") from None
        raise
    emit_rows([dict(zip(columns, row, strict=True)) for row in rows], columns, fmt)


@lake.command()
@_source_options
@click.option("--output", "-o", required=True, metavar="FILE", help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv", "parquet"]), default="ndjson",
              show_default=True)
def export(source: str, since: str | None, storage_options: tuple[str, ...], output: str, fmt: str) -> None:
    """Write every payload to one file (NDJSON, CSV or Parquet), oldest first."""
    rows = _lake(source, since, storage_options).export(output, fmt)
    console(stderr=True).print(f"Exported {rows:,} payloads to {output}")


@lake.command()
@_source_options
@database_options
def load(source: str, since: str | None, storage_options: tuple[str, ...]) -> None:
    """Load the payloads into the selected database (category `usage`); loading twice adds nothing."""
    from ..usage.payload import to_raw_event, validate_payload

    lake_ = _lake(source, since, storage_options)
    loaded = skipped = 0
    with open_telemetry(must_exist=False) as telemetry:
        chunk: list[dict[str, Any]] = []
        for data in lake_.payloads():
            try:
                chunk.append(to_raw_event(validate_payload(data)))
            except ValidationError:
                skipped += 1
                continue
            if len(chunk) == LOAD_CHUNK:
                telemetry.track_batch(chunk)
                loaded += len(chunk)
                chunk = []
        if chunk:
            telemetry.track_batch(chunk)
            loaded += len(chunk)
        if not telemetry.flush(60.0):
            raise click.ClickException("the store did not commit every payload; run the load again "
                                       "(payloads already stored are skipped)")
    console(stderr=True).print(f"Loaded {loaded:,} payloads" + (f" ({skipped:,} invalid, skipped)" if skipped else ""))
