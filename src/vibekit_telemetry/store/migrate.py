"""Run the store's Alembic migrations programmatically: no alembic.ini, no alembic import when current."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect

from ..errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

# Kept in step with migrations/versions by a test, so the start-up check needs no alembic import.
REVISIONS: Final = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010",
                           "0011", "0012", "0013", "0014", "0015")
HEAD: Final = REVISIONS[-1]
SCRIPT_LOCATION: Final = Path(__file__).with_name("migrations")


def head_version() -> str:
    """Return the newest schema version this code knows."""
    return HEAD


def check_known(version: str | None) -> None:
    """Raise StoreError when the database's schema version is one this code does not know (a newer release's)."""
    if version is not None and version not in REVISIONS:
        raise StoreError(f"the database's schema is at version {version}, which this vibekit-telemetry does not "
                         f"know (it knows up to {HEAD}): a newer release wrote it. Upgrade vibekit-telemetry "
                         "(pip install -U vibekit-telemetry), or give this one a database of its own")


def check_not_foreign(conn: Connection) -> None:
    """Raise StoreError when a never-migrated database already has tables of the store's names (not ours)."""
    from .schema import metadata

    clash = sorted(set(inspect(conn).get_table_names()) & set(metadata.tables))
    if clash:
        raise StoreError(f"table {', '.join(clash)} already exists; this database holds tables vibekit-telemetry "
                         "did not create (another application's?): give telemetry a file, schema or database "
                         "of its own")


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


# Alembic's own version table, exactly as its MigrationContext creates it.
_version_table = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                       PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))


def _is_empty(conn: Connection) -> bool:
    return not set(inspect(conn).get_table_names()) - {"alembic_version"}


def create_at_head(conn: Connection) -> None:
    """Create the head schema in an empty database from schema.py and stamp it, without Alembic.

    What Alembic users do for fresh databases: the migrations are only replayed to upgrade existing
    ones. Saves the Alembic import (and its ~10 MB) and the replay on every first start.
    """
    from . import _ddl
    from .schema import metadata

    metadata.create_all(conn)  # with the event indexes: they are bound to the events table
    _ddl.create_text_search(conn)
    _ddl.create_changelog(conn)
    _ddl.create_session_sort(conn)
    conn.exec_driver_sql(_ddl.LEGACY_VIEW)
    _ddl.create_partitioned_events(conn)
    _version_table.create(conn, checkfirst=True)
    conn.execute(_version_table.delete())
    conn.execute(_version_table.insert().values(version_num=HEAD))


# A fixed advisory-lock key for schema changes (any 64-bit number no other tool of the database uses).
MIGRATION_LOCK_KEY: Final = 0x76696265_6B697401  # "vibekit\x01"


def upgrade(engine: Engine, to_version: str = "head") -> bool:
    """Migrate the database up to `to_version` (default the head), in one transaction.

    An empty database going to the head is created at the head directly (create_at_head).
    Return whether the schema was created or changed (False: it was at the head already).
    """
    found = current_version(engine)
    if found == HEAD and to_version in ("head", HEAD):
        return False  # the common start-up case: plain SQL, alembic never imported
    check_known(found)
    if found is None:  # never migrated: new, or another application's (only a first start pays this look)
        with engine.connect() as conn:
            check_not_foreign(conn)
    if to_version in ("head", HEAD):
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)  # serialise two first starts
            with conn.begin():
                _lock_schema(conn)
                if _read_version(conn) is None and _is_empty(conn):
                    create_at_head(conn)
                    return True
    from alembic import command

    with engine.begin() as conn:
        _lock_schema(conn)
        command.upgrade(_config(conn), to_version)
    return current_version(engine) != found


def _lock_schema(conn: Any) -> None:
    """On PostgreSQL, wait for any other process migrating this database (released at commit).

    Several `telemetry api` replicas started at once on a new database would otherwise all create
    the tables, and all but one fail on pg_type's unique index. SQLite serialises with BEGIN IMMEDIATE.
    """
    if conn.dialect.name == "postgresql":
        # The store's connections give up on a lock after busy_timeout_ms (dialect_pg.make_engine); a
        # migration of a new database takes seconds, and the others must wait for it, not fail.
        conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")


def downgrade(engine: Engine, to_version: str) -> None:
    """Migrate the database down to `to_version` ("base" removes every table)."""
    check_known(current_version(engine))
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(conn), to_version)


def status(engine: Engine) -> dict[str, Any]:
    """Return the current version, the head, and the versions still to apply."""
    current = current_version(engine)
    newer = current is not None and current not in REVISIONS  # written by a newer release
    start = REVISIONS.index(current) + 1 if current in REVISIONS else len(REVISIONS) if newer else 0
    return {"current": current, "head": HEAD, "pending": list(REVISIONS[start:]), "newer": newer}
