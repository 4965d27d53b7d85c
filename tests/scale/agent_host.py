"""An agent host in its own process: records sessions into its local SQLite file and forwards them.

Driven line by line on stdin (the test is the operator):
  emit SESSION N   one session of N events (start, N-2 streams, end), committed locally; prints "ok"
  drain            wait until the server exporter's lag is 0; prints "caught-up"
  quit             shut down (exporters get 60 s); prints "bye"
"""

from __future__ import annotations

import sys
import time

from vibekit_telemetry import Telemetry


def main(db: str, url: str, api_key: str) -> None:
    """Run the host until `quit` (or until killed: the test kills it with SIGKILL too)."""
    telemetry = Telemetry(storage=[
        {"type": "sqlite", "options": {"path": db}},
        # Short retry waits keep the test quick; the defaults (0.5 s .. 30 s) suit a laptop.
        {"type": "server", "options": {"url": url, "api_key": api_key, "batch_size": 40, "start_at": "beginning",
                                       "retry_base_s": 0.05, "retry_max_s": 0.3, "failure_threshold": 3,
                                       "open_timeout_s": 0.3}},
    ], exporter_shutdown_timeout_s=60, raise_on_error=True)
    runtime = telemetry.runtime
    assert runtime is not None
    for line in sys.stdin:
        command, *args = line.split()
        if command == "emit":
            session, count = args[0], int(args[1])
            telemetry.track_start("claude", "code", "go", session_id=session)
            for i in range(count - 2):
                telemetry.track_stream(session, f"{session} chunk {i}")
            telemetry.track_end(session)
            assert telemetry.flush(timeout=30)
        elif command == "drain":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = [s for s in runtime.exporters.status() if s["name"].startswith("server:")]
                if status and status[0]["lag"] == 0:
                    break
                time.sleep(0.05)
            print("caught-up" if time.monotonic() < deadline else f"behind {status}")
        elif command == "quit":
            telemetry.shutdown()
            print("bye", flush=True)
            return
        else:
            print(f"unknown command {command}")
            continue
        if command == "emit":
            print("ok")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
