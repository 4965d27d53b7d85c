"""JSON and CSV written to stdout row by row, so `dump` and `query` hold one page of events, not all of them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from ..export.writers import chunked
from .options import _csv_value, to_json_value


def stream_json(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write rows as one indented JSON array (the same text as echo_json of the whole list)."""
    first = True
    for chunk in chunked(rows, 1000):
        parts = [json.dumps(to_json_value({c: row.get(c) for c in columns}), indent=2, ensure_ascii=False,
                            default=str).replace("\n", "\n  ") for row in chunk]
        click.echo(("[\n  " if first else ",\n  ") + ",\n  ".join(parts), nl=False)
        first = False
    click.echo("[]" if first else "\n]")


def stream_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write rows as CSV with a header line (the same text as echo_csv of the whole list)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for chunk in chunked(rows, 1000):
        for row in chunk:
            writer.writerow([_csv_value(row.get(c)) for c in columns])
        click.echo(buffer.getvalue(), nl=False)
        buffer.seek(0)
        buffer.truncate()
    click.echo(buffer.getvalue(), nl=False)
