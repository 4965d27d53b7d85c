"""Alembic environment: runs migrations on the connection the caller put in `config.attributes`."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through vibekit_telemetry.store.migrate, which passes a connection")

# No target_metadata: the migrations carry their own frozen DDL and autogenerate is not used.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
