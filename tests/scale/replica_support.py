"""Real `telemetry api` replica processes on loopback ports for the replica tests (not a test module)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

KEY = "replica-key-0123456789"


def free_port() -> int:
    """A port no one listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One `telemetry api` process on PostgreSQL (the URL of a test schema), with a read+ingest key."""

    def __init__(self, pg_url: str, cwd: Path, *, env: dict[str, str] | None = None,
                 keys: tuple[str, ...] = (), key: str = KEY) -> None:
        self.headers = {"X-API-Key": key}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"replica-{self.port}.log"
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {}),
                    "TELEMETRY_DATABASE_URL": pg_url.replace("postgresql+psycopg://", "postgresql://")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vibekit_telemetry.cli", "api", "--port", str(self.port),
                 "--log-level", "warning", "--api-key", f"{key}:ingest+read",
                 *(arg for key in keys for arg in ("--api-key", f"{key}:ingest+read"))],
                cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)

    def wait_up(self, timeout_s: float = 60) -> None:
        """Wait until /health answers; fail with the replica's log if it exits or never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"replica exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"{self.url} did not come up")

    def jobs(self) -> dict[str, Any]:
        """The replica's scheduler status (GET /api/health)."""
        answer = httpx.get(self.url + "/api/health", headers=self.headers, timeout=10)
        assert answer.status_code == 200, answer.text
        jobs: dict[str, Any] = answer.json()["scheduler"]
        return jobs

    def post(self, events: Any) -> httpx.Response:
        """POST events to /api/events."""
        return httpx.post(self.url + "/api/events", json=events, headers=self.headers, timeout=30)

    def kill(self) -> None:
        """SIGKILL: no shutdown, the database session just goes away."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Terminate (graceful) and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def new_schema_url() -> str:
    """Create a test schema in PostgreSQL's `test` database; return its URL (drop it with drop_schema)."""
    import uuid

    import psycopg

    from pg_support import PG_DSN

    schema = "vk_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


def drop_schema(url: str) -> None:
    """Drop the schema new_schema_url created."""
    import psycopg

    from pg_support import PG_DSN

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def wait_for(condition: Any, what: str, timeout_s: float = 60, every_s: float = 0.2) -> Any:
    """Poll condition() until it returns something truthy; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
