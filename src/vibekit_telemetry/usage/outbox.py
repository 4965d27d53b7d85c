"""The on-disk queue of payloads not yet sent, and the background sender that drains it.

Every payload is written here first and removed once the endpoint took it, so a payload the tool's
exit cut short (or an endpoint that was down) is sent on a later run. The queue is bounded: past
`max_queued` files the oldest are dropped, so a tool that is always offline never fills the disk.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

logger = logging.getLogger("vibekit_telemetry.usage")


class Outbox:
    """Payload files in one directory, oldest first by name."""

    def __init__(self, directory: Path, max_queued: int = 100) -> None:
        self.directory = directory
        self.max_queued = max_queued

    def put(self, payload: dict[str, Any]) -> Path:
        """Write one payload (write, then rename: a reader never sees half a file); trim the oldest past the bound."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
        for old in self.pending()[:-self.max_queued]:
            old.unlink(missing_ok=True)
        return path

    def pending(self) -> list[Path]:
        """Return the queued payload files, oldest first."""
        try:
            return sorted(self.directory.glob("*.json"))
        except OSError:
            return []


def post(endpoint: str, body: bytes, timeout_s: float) -> int:
    """POST a JSON body; return the status code (0 when the endpoint could not be reached)."""
    request = urllib.request.Request(endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "vibekit-telemetry-usage"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return 0


class Sender:
    """One daemon thread per client that drains the outbox; the tool's exit waits for it at most `deadline_s`."""

    def __init__(self, outbox: Outbox, endpoint: str, timeout_s: float = 5.0) -> None:
        self.outbox, self.endpoint, self.timeout_s = outbox, endpoint, timeout_s
        self.sent = 0
        self._lock = threading.Lock()
        self._again = False
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        """Drain the outbox in the background (a drain already running goes round once more)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._again = False
            self._thread = threading.Thread(target=self._run, name="vibekit-usage-sender", daemon=True)
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the drain; return whether it finished."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(max(0.0, timeout))
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            self.drain()
            with self._lock:
                if not self._again:
                    return
                self._again = False

    def drain(self) -> int:
        """Send every queued payload, oldest first; stop at the first the endpoint could not take now."""
        sent = 0
        for path in self.outbox.pending():
            try:
                body = path.read_bytes()
            except OSError:  # another run of the tool sent it meanwhile
                continue
            status = post(self.endpoint, body, self.timeout_s)
            if 200 <= status < 300 or (400 <= status < 500 and status not in (408, 429)):
                # Taken, or refused for good (it would be refused again): either way not worth keeping.
                if status >= 400:
                    logger.debug("usage endpoint refused a payload (%d); dropped", status)
                path.unlink(missing_ok=True)
                sent += 1
                self.sent += 1
            else:
                return sent  # down, slow or busy: the rest waits for a later run
        return sent
