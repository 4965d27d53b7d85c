"""Migration scripts; Alembic loads them by path and skips this file."""
