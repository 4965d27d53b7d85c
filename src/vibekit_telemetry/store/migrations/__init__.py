"""Alembic migrations for the SQL store, run programmatically by `vibekit_telemetry.store.migrate`."""
