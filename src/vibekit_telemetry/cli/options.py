"""Shared option decorators and output formatting (table, JSON, CSV) for the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..config import ENV_CONFIG, ENV_DB_PATH
from ..errors import ValidationError
from ..events import FIELD_ALIASES, PUBLIC_FIELDS
from ..timeparse import parse_time
from .context import CliState

F = TypeVar("F", bound=Callable[..., Any])

FORMATS: Final = ("table", "json", "csv")
DEFAULT_TABLE_LIMIT: Final = 100
# Columns a table shows for events when --fields is not given (JSON and CSV carry every field).
EVENT_TABLE_FIELDS: Final = ("timestamp", "session_id", "event_type", "category", "action", "label",
                             "stream_data")
SESSION_FIELDS: Final = ("id", "category", "action", "status", "start_time", "end_time", "duration",
                         "event_count", "stream_count", "error_count", "last_event_time", "label",
                         "sandbox_id", "repo_url", "metadata")
SESSION_TABLE_FIELDS: Final = ("id", "category", "action", "status", "start_time", "duration",
                               "event_count", "stream_count", "error_count")
SESSION_ALIASES: Final = {"session_id": "id", "sessionId": "id", "session": "id", "agent": "category",
                          "agent_type": "category", "agentType": "category", "mode": "action",
                          "prompt": "label", "events": "event_count", "errors": "error_count",
                          "streams": "stream_count"}
TIME_FIELDS: Final = frozenset({"timestamp", "start_time", "end_time", "last_event_time",
                                "first_timestamp", "last_timestamp", "first_seen", "last_seen"})
DURATION_FIELDS: Final = frozenset({"duration", "avg_session_duration_ms"})
_CELL_WIDTH: Final = 60


# --- global options ------------------------------------------------------------------------------

def _state_callback(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        state = ctx.find_root().ensure_object(CliState)
        source = ctx.get_parameter_source(param.name or attr)
        # An explicit option anywhere on the command line wins; the environment only fills a gap.
        if source is click.core.ParameterSource.COMMANDLINE or getattr(state, attr) is None:
            setattr(state, attr, str(value))
    return callback


def database_options(func: F) -> F:
    """Add --db and --config, accepted on every group and every command."""
    func = click.option(
        "--config", "config", metavar="FILE", envvar=ENV_CONFIG, show_envvar=True, expose_value=False,
        is_eager=True, callback=_state_callback("config"),
        type=click.Path(dir_okay=False, exists=True),
        help="TOML config file (default: .vibekit/telemetry.toml when present).",
    )(func)
    func = click.option(
        "--db", "db", metavar="PATH", envvar=ENV_DB_PATH, show_envvar=True, expose_value=False,
        is_eager=True, callback=_state_callback("db"),
        help="SQLite database file or postgresql:// URL [default: .vibekit/telemetry.db].",
    )(func)
    return func


# --- output options ------------------------------------------------------------------------------

def format_option(formats: Sequence[str] = FORMATS) -> Callable[[F], F]:
    """Add --format with the given choices (table first, the default)."""
    def decorator(func: F) -> F:
        return click.option("--format", "fmt", type=click.Choice(list(formats), case_sensitive=False),
                            default=formats[0], show_default=True,
                            help="Output format: " + ", ".join(formats) + ".")(func)
    return decorator


def output_options(func: F) -> F:
    """Add --format table|json|csv, --fields and --exclude."""
    func = click.option("--exclude", "exclude", metavar="A,B", multiple=True,
                        help="Fields to leave out (snake_case or camelCase), "
                             "e.g. --exclude streamData.")(func)
    func = click.option("--fields", "fields", metavar="A,B", multiple=True,
                        help="Fields to show, in order (snake_case or camelCase), "
                             "e.g. --fields sessionId,agentType,timestamp.")(func)
    return format_option()(func)


def split_list(values: Iterable[str] | None) -> list[str]:
    """Flatten repeated and comma-separated option values into one list."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def resolve_fields(requested: Sequence[str], available: Sequence[str],
                   aliases: Mapping[str, str] | None = None, option: str = "--fields") -> list[str]:
    """Map user-typed field names (any case style or alias) to available keys; unknown ones exit 2."""
    lookup: dict[str, str] = {_norm(key): key for key in available}
    for alias, key in (aliases or {}).items():
        if key in available:
            lookup.setdefault(_norm(alias), key)
    out: list[str] = []
    for name in requested:
        found = lookup.get(_norm(name))
        if found is None:
            raise click.BadParameter(f"unknown field {name!r}; expected some of: " + ", ".join(available),
                                     param_hint=option)
        if found not in out:
            out.append(found)
    return out


EVENT_ALIASES: Final = {alias: name for alias, name in FIELD_ALIASES.items()}


def select_columns(available: Sequence[str], fields: Sequence[str], exclude: Sequence[str], *,
                   aliases: Mapping[str, str] | None = None,
                   table_default: Sequence[str] | None = None, fmt: str = "json") -> list[str]:
    """Return the output columns from --fields / --exclude, with a narrower default for tables."""
    wanted = split_list(fields)
    dropped = resolve_fields(split_list(exclude), available, aliases, "--exclude")
    if wanted:
        columns = resolve_fields(wanted, available, aliases)
    elif fmt == "table" and table_default is not None:
        columns = [c for c in table_default if c in available]
    else:
        columns = list(available)
    return [c for c in columns if c not in dropped]


# --- filters -------------------------------------------------------------------------------------

def time_option_value(value: str | None, option: str) -> int | None:
    """Parse a --from/--to style option into epoch ms; a bad phrase exits 2 naming the option."""
    if value is None:
        return None
    return parse_time(value, option)


def parse_meta(values: Iterable[str]) -> dict[str, Any]:
    """Parse repeated --meta key=value options; values that read as JSON scalars keep their type."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError("--meta", "key=value", item)
        value: Any = raw
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        if parsed is None or isinstance(parsed, bool | int | float):
            value = parsed
        out[key.strip()] = value
    return out


def event_filter_options(func: F) -> F:
    """Add the event filters shared by dump and query."""
    decorators = [
        click.option("--from", "--since", "since", metavar="TIME",
                     help="Events at or after TIME: epoch ms, ISO date, 'yesterday', '1 hour ago', '7d'."),
        click.option("--to", "--until", "until", metavar="TIME", help="Events at or before TIME."),
        click.option("--session", "--session-id", "sessions", metavar="ID", multiple=True,
                     help="Session id (repeatable, or a comma-separated list)."),
        click.option("--agent", "--category", "--agent-type", "agents", metavar="NAME", multiple=True,
                     help="Agent type / category (repeatable, or comma-separated)."),
        click.option("--type", "--event-type", "event_types", metavar="TYPE", multiple=True,
                     help="Event type: start, stream, end, error, custom (repeatable)."),
        click.option("--mode", "--action", "modes", metavar="MODE", multiple=True,
                     help="Mode / action, e.g. code, chat, ask (repeatable)."),
        click.option("--contains", metavar="TEXT", help="Text contained in the label or stream data."),
        click.option("--meta", "meta", metavar="KEY=VALUE", multiple=True,
                     help="Metadata key equal to value (repeatable)."),
        click.option("--limit", type=click.IntRange(min=0), default=None,
                     help=f"At most this many rows [default: {DEFAULT_TABLE_LIMIT} for tables, "
                          "all for json/csv]."),
        click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Skip this many rows first."),
        click.option("--order", type=click.Choice(["asc", "desc"], case_sensitive=False), default="asc",
                     show_default=True, help="Order by timestamp."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def effective_limit(limit: int | None, fmt: str) -> int | None:
    """Return --limit, or the table default when it was not given."""
    if limit is None and fmt == "table":
        return DEFAULT_TABLE_LIMIT
    return limit


def build_query_kwargs(*, since: str | None, until: str | None, sessions: Sequence[str],
                       agents: Sequence[str], event_types: Sequence[str], modes: Sequence[str],
                       contains: str | None, meta: Sequence[str], limit: int | None, offset: int,
                       order: str) -> dict[str, Any]:
    """Turn the shared event filter options into keyword arguments for parse_query."""
    kwargs: dict[str, Any] = {
        "since": time_option_value(since, "--from"),
        "until": time_option_value(until, "--to"),
        "session_ids": split_list(sessions) or None,
        "categories": split_list(agents) or None,
        "event_types": split_list(event_types) or None,
        "actions": split_list(modes) or None,
        "contains": contains,
        "metadata": parse_meta(meta) or None,
        "limit": limit,
        "offset": offset,
        "order": order.lower(),
    }
    return {k: v for k, v in kwargs.items() if v is not None}


# --- rendering -----------------------------------------------------------------------------------

def console(*, stderr: bool = False) -> Console:
    """Return a Rich console on stdout (or stderr); wide when output is not a terminal."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=200)
    return out


def format_time(ms: Any) -> str:
    """Render epoch milliseconds as a UTC date and time."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return "" if ms is None else str(ms)
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_date(ms: int | None) -> str:
    """Render epoch milliseconds as a UTC date."""
    if ms is None:
        return "n/a"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def format_duration(ms: Any) -> str:
    """Render a duration in milliseconds as `2m 34s`, `1h 5m`, `850ms`."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not math.isfinite(ms):
        return "" if ms is None else str(ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = round(ms / 1000)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_bytes(size: int | None) -> str:
    """Render a byte count as `15.2 MB`."""
    if size is None:
        return "n/a"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover


def _cell(key: str, value: Any) -> Text:
    if value is None:
        return Text("")
    if key in TIME_FIELDS:
        return Text(format_time(value))
    if key in DURATION_FIELDS:
        return Text(format_duration(value))
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}" if key.endswith(("count", "events", "sessions", "errors")) else str(value)
    else:
        text = str(value)
    text = " ".join(text.split())
    if len(text) > _CELL_WIDTH:
        text = text[:_CELL_WIDTH - 1] + "…"
    return Text(text)


def _title(key: str) -> str:
    return key


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str | None = None,
                empty: str = "No rows.") -> None:
    """Print rows as a Rich table (cell text is never read as markup)."""
    out = console()
    if not rows:
        out.print(Text(empty))
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(_title(column), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(c, row.get(c)) for c in columns))
    out.print(table)


def print_key_values(pairs: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """Print aligned `Label: value` lines, labels in bold (no trailing padding)."""
    out = console()
    if title:
        out.print(Text(title, style="bold underline"))
    width = max((len(label) for label, _ in pairs), default=0) + 1
    for label, value in pairs:
        line = Text.assemble((f"{label}:", "bold"), " " * (width - len(label)), value)
        out.print(line, overflow="fold")


def to_json_value(value: Any) -> Any:
    """Make a value JSON-safe (non-finite floats become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def echo_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    click.echo(json.dumps(to_json_value(document), indent=2, ensure_ascii=False, default=str))


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def echo_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
             labels: Sequence[str] | None = None) -> None:
    """Write rows as CSV with a header line to stdout."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(labels or columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    click.echo(buffer.getvalue(), nl=False)


def emit_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str, *,
              title: str | None = None, empty: str = "No rows.") -> None:
    """Write rows in the chosen format, keeping only `columns`, in order."""
    fmt = fmt.lower()
    if fmt == "json":
        echo_json([{c: row.get(c) for c in columns} for row in rows])
    elif fmt == "csv":
        echo_csv(rows, columns)
    else:
        print_table(rows, columns, title=title, empty=empty)


EVENT_FIELDS: Final = PUBLIC_FIELDS
