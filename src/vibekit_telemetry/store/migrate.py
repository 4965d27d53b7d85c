"""Run the store's Alembic migrations programmatically: no alembic.ini, no alembic import when current."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

# Kept in step with migrations/versions by a test, so the start-up check needs no alembic import.
REVISIONS: Final = ("0001", "0002", "0003", "0004")
HEAD: Final = REVISIONS[-1]
SCRIPT_LOCATION: Final = Path(__file__).with_name("migrations")


def head_version() -> str:
    """Return the newest schema version this code knows."""
    return HEAD


def _read_version(conn: Connection) -> str | None:
    if not conn.dialect.has_table(conn, "alembic_version"):
        return None
    value = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if value is None else str(value)


def current_version(engine: Engine) -> str | None:
    """Return the schema version the database is at, or None when it has never been migrated."""
    with engine.connect() as conn:
        return _read_version(conn)


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = conn
    return config


def upgrade(engine: Engine, to_version: str = "head") -> None:
    """Migrate the database up to `to_version` (default the head), in one transaction."""
    if to_version in ("head", HEAD) and current_version(engine) == HEAD:
        return  # the common start-up case: plain SQL, alembic never imported
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_config(conn), to_version)


def downgrade(engine: Engine, to_version: str) -> None:
    """Migrate the database down to `to_version` ("base" removes every table)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(conn), to_version)


def status(engine: Engine) -> dict[str, Any]:
    """Return the current version, the head, and the versions still to apply."""
    current = current_version(engine)
    start = REVISIONS.index(current) + 1 if current in REVISIONS else 0
    return {"current": current, "head": HEAD, "pending": list(REVISIONS[start:])}
