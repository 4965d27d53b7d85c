"""The batcher's local spool: payloads delivered by the store's follower, durable until their batch is written."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO

from ..errors import ValidationError


class Spool:
    """An append-only NDJSON file of `{"id": event_id, "data": payload}` lines, fsynced per append.

    A lock file keeps a second process from sharing it (each replica needs its own spool).
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "spool.ndjson"
        self._lock: IO[bytes] = open(directory / "spool.lock", "wb")  # noqa: SIM115 - held for the spool's life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise ValidationError("spool_dir", "a spool directory no other process uses (give each server "
                                  "replica its own)", str(directory)) from None

    def load(self) -> list[tuple[str, bytes]]:
        """Return the spooled (id, NDJSON line of the payload) pairs; a torn last line is dropped."""
        out: list[tuple[str, bytes]] = []
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        for line in raw.splitlines():
            try:
                item = json.loads(line)
                out.append((str(item["id"]), json.dumps(item["data"], separators=(",", ":")).encode() + b"\n"))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a crash mid-append: its payload was never acknowledged to the follower
        return out

    def append(self, rows: list[tuple[str, bytes]]) -> None:
        """Append rows and fsync: once this returns they survive a crash."""
        if not rows:
            return
        text = b"".join(b'{"id":' + json.dumps(i).encode() + b',"data":' + line.rstrip(b"\n") + b"}\n"
                        for i, line in rows)
        with open(self.path, "ab") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())

    def rewrite(self, rows: list[tuple[str, bytes]]) -> None:
        """Replace the spool with `rows` (what is left after a batch was written), atomically."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            out.write(b"".join(b'{"id":' + json.dumps(i).encode() + b',"data":' + line.rstrip(b"\n") + b"}\n"
                               for i, line in rows))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def close(self) -> None:
        """Release the lock."""
        self._lock.close()
