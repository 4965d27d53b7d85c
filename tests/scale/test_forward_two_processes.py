"""An agent-host process forwards to a central `telemetry api` process that is down for a while.

Both are real processes on loopback; the host is also killed with SIGKILL while the server is down
and a new host process resumes from the persisted cursor. Every event arrives exactly once: the
central store holds the host's events, and its session counters equal the host's (a duplicate
would be skipped by event_id, never counted).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from servers import ServerProcess, free_port
from vibekit_telemetry.cli import cli

HERE = Path(__file__).parent
KEY = "forward-secret-0123456789"


class Central:
    """`telemetry api` on a fixed port (the hosts keep its URL), with an ingest key."""

    def __init__(self, db: Path, port: int) -> None:
        self.db, self.port, self.url = db, port, f"http://127.0.0.1:{port}"
        self.server: ServerProcess | None = None

    def start(self) -> None:
        self.server = ServerProcess(self.db, "--api-key", f"{KEY}:ingest+read", log_level="warning", port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class Host:
    """tests/scale/agent_host.py in its own process, driven on stdin."""

    def __init__(self, db: Path, url: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(HERE / "agent_host.py"), str(db), url, KEY],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_offline_host_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    central = Central(tmp_path / "central.db", free_port())
    host_db = tmp_path / "host.db"
    central.start()
    host = Host(host_db, central.url)
    try:
        assert host.send("emit s1 50") == "ok"
        assert host.send("drain") == "caught-up"
        central.stop()                                   # the central server goes away
        assert host.send("emit s2 60") == "ok"           # committed locally, not deliverable
        assert host.send("emit s3 25") == "ok"
        host.kill()                                      # the laptop crashes while offline
        central.start()                                  # the server comes back on the same URL
        host = Host(host_db, central.url)                # a new host process on the same file
        assert host.send("emit s4 30") == "ok"
        assert host.send("drain") == "caught-up"
        assert host.send("quit") == "bye"
    finally:
        if host.process.poll() is None:
            host.kill()
        central.stop()
    sent = sorted(_rows(host_db, "SELECT event_id FROM events"))
    received = sorted(_rows(central.db, "SELECT event_id FROM events"))
    assert len(sent) == 165 and received == sent
    counters = "SELECT id, event_count, stream_count, status, end_time FROM sessions ORDER BY id"
    assert _rows(central.db, counters) == _rows(host_db, counters)


def test_forward_status_shows_lag_per_destination(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vibekit_telemetry import Telemetry

    db = tmp_path / "host.db"
    url = f"http://127.0.0.1:{free_port()}"            # nobody listens: everything stays pending
    telemetry = Telemetry(storage=[{"type": "sqlite", "options": {"path": str(db)}},
                                   {"type": "server", "options": {"url": url, "start_at": "beginning"}}],
                          exporter_shutdown_timeout_s=0)
    telemetry.track_start("claude", "code", "go", session_id="lagging")
    telemetry.track_end("lagging")
    telemetry.shutdown()
    result = CliRunner().invoke(cli, ["--db", str(db), "forward", "status", "--format", "json"],
                                env={"TELEMETRY_SERVER_URL": url})
    assert result.exit_code == 0, result.output
    import json

    [row] = json.loads(result.output)
    assert row["name"] == f"server:{url}/api/events"
    assert row["committed"] == 2 and row["lag"] in (None, 2)
