"""PostgreSQL for tests: the local server's DSN and why it cannot be used, if it cannot."""

from __future__ import annotations

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


def pg_skip_reason() -> str | None:
    """Return why PostgreSQL tests must skip here (None when the server answers)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'vibekit-telemetry[postgres]')"
    try:
        psycopg.connect(PG_DSN).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432 db 'test': {exc}".splitlines()[0]
    return None


PG_SKIP = pg_skip_reason()
