"""Where the CLI's commands get their database from, and how errors become exit codes."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from ..config import DEFAULT_DB_PATH
from ..errors import StoreError, TelemetryError, ValidationError

if TYPE_CHECKING:
    from ..config import TelemetryConfig
    from ..service import Telemetry
    from ..store.base import QueryableStore
    from ..store.sql import SQLStore

ENV_DEBUG: Final = "TELEMETRY_DEBUG"
# The shell's code for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED: Final = 130


@dataclass
class CliState:
    """The global options, gathered from every group and command on the way to the one that runs."""

    db: str | None = None
    config: str | None = None

    def config_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments that point Telemetry or load_config at this database."""
        kwargs: dict[str, Any] = {}
        if self.db is not None:
            if "://" in self.db:
                kwargs["database_url"] = self.db
            else:
                kwargs["db_path"] = self.db
        if self.config is not None:
            kwargs["config_file"] = self.config
        return kwargs

    def describe(self) -> str:
        """Return the database as the user named it, for messages."""
        return self.db or DEFAULT_DB_PATH


def database_label() -> str:
    """Return where the selected database lives (file path or URL without password), for messages."""
    from ..store.sql import SQLStore

    store = resolve_store()
    return store.where() if isinstance(store, SQLStore) else str(store.name)


def get_state() -> CliState:
    """Return the CliState of the running command, creating it at the root context."""
    ctx = click.get_current_context()
    return ctx.find_root().ensure_object(CliState)


def _debug() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() in ("1", "true", "yes", "on")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def _is_database_error(exc: BaseException) -> bool:
    # Stores raise typed StoreErrors; SQLAlchemy's own errors (a read on a broken file) are database errors too.
    if isinstance(exc, OSError | StoreError):
        return True
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - sqlalchemy is a core dependency
        return False
    return isinstance(exc, SQLAlchemyError)


def _database_message(exc: BaseException) -> str:
    """Phrase a database failure for one line, pointing at the usual causes."""
    text = _one_line(getattr(exc, "orig", None) or exc)
    if "file is not a database" in text or "malformed" in text:
        return f"the database file is not a valid SQLite database ({text})"
    return text


class TelemetryCommand(click.Command):
    """A click command that turns package errors into clean one-line errors and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; ValidationError exits 2, store and other failures exit 1, no tracebacks."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except ValidationError as exc:
            raise click.UsageError(str(exc), ctx) from None
        except KeyboardInterrupt:
            # Ctrl-C before or after the part of a command that handles it itself (opening the store,
            # say): the shell's code for it, not click's "Aborted!" with exit 1.
            click.echo("Error: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if _debug():
                raise
            if _is_database_error(exc):
                raise click.ClickException(_database_message(exc)) from None
            if isinstance(exc, TelemetryError):
                raise click.ClickException(_one_line(exc)) from None
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {_one_line(exc)} "
                f"(set {ENV_DEBUG}=1 for a traceback)") from None


class TelemetryGroup(click.Group):
    """A click group whose commands are TelemetryCommands and whose subgroups are TelemetryGroups."""

    command_class = TelemetryCommand
    group_class = type


def _check_sqlite_file(path: str) -> None:
    """Fail with a clear message when a path exists but is not a SQLite database."""
    file = Path(path)
    if not file.exists():
        return
    if file.is_dir():
        raise click.ClickException(f"{path} is a directory, not a database file")
    with file.open("rb") as handle:
        head = handle.read(16)
    if head and head != b"SQLite format 3\x00":
        raise click.ClickException(f"{path} is not a SQLite database (bad file header)")


def _config() -> TelemetryConfig:
    from ..config import load_config

    return load_config(**get_state().config_kwargs())


def resolve_store() -> QueryableStore:
    """Return the primary store the configuration names, built but not opened (no migration run)."""
    from ..store.factory import primary_store

    try:
        return primary_store(_config())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def sqlite_file(store: Any) -> str | None:
    """Return the database file of a SQLite store, or None for other stores."""
    from ..store.sql import SQLStore

    return store.path if isinstance(store, SQLStore) else None


def require_existing_db(store: Any | None = None) -> None:
    """Exit 1 with a hint when a reading command is pointed at a SQLite file that does not exist."""
    path = sqlite_file(store if store is not None else resolve_store())
    if path is None:
        return
    if not Path(path).exists():
        raise click.ClickException(
            f"no telemetry database at {path} (run `telemetry init` or `telemetry demo`, "
            "or point --db at one)")
    _check_sqlite_file(path)


@contextlib.contextmanager
def open_telemetry(*, must_exist: bool = True, **extra: Any) -> Iterator[Telemetry]:
    """Open the SDK facade on the selected database, raising on errors, and shut it down after."""
    from ..service import Telemetry

    state = get_state()
    store = resolve_store()
    if must_exist:
        require_existing_db(store)
    elif sqlite_file(store):
        _check_sqlite_file(str(sqlite_file(store)))
    kwargs = {**state.config_kwargs(), "raise_on_error": True, **extra}
    telemetry = Telemetry(**kwargs)
    try:
        yield telemetry
    finally:
        telemetry.shutdown()


@contextlib.contextmanager
def open_store(*, must_exist: bool = True) -> Iterator[QueryableStore]:
    """Open the primary store of the selected database alone (schema migrated to head, no writer thread)."""
    store = resolve_store()
    if must_exist:
        require_existing_db(store)
    elif sqlite_file(store):
        _check_sqlite_file(str(sqlite_file(store)))
    store.initialize()
    try:
        yield store
    finally:
        store.shutdown()


def schema_store(*, must_exist: bool = True) -> SQLStore:
    """Return the selected SQL store, not opened, for the schema commands (`telemetry db`)."""
    from ..store.sql import SQLStore

    store = resolve_store()
    if not isinstance(store, SQLStore):
        raise click.ClickException("the configured store is not a SQL database")
    if must_exist:
        require_existing_db(store)
    elif store.path is not None:
        _check_sqlite_file(store.path)
    return store


def _not_unknown_option(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("telemetry config: unknown option")


@contextlib.contextmanager
def unknown_options_printed_here() -> Iterator[None]:
    """Leave the unknown-option log warnings out while a command prints them itself (once, where a user looks)."""
    package_logger = logging.getLogger("vibekit_telemetry")
    package_logger.addFilter(_not_unknown_option)
    try:
        yield
    finally:
        package_logger.removeFilter(_not_unknown_option)
