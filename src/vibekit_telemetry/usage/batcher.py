"""UsageBatcher: the exporter that cuts committed usage payloads into batch objects (seed 004's pipeline).

It follows the primary store like every exporter (its cursor, backoff, breaker). Each export() appends
the batch's usage payloads to a local spool and fsyncs it before returning, so the cursor only moves
past payloads that are safe; a batch object is cut when the rows reach `max_rows`, the next row would
pass `max_bytes`, or the oldest spooled row is `max_age_s` old, whichever comes first. A crash at any
point loses nothing: the spool is replayed at start. It can write a batch twice (a crash between the
object write and the spool rewrite), never lose one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..registry import check_options
from .objects import Destination, encode, is_remote, object_name
from .payload import from_event
from .spool import Spool

logger = logging.getLogger("vibekit_telemetry.usage")

OPTIONS: Final = frozenset({"dest", "max_bytes", "max_rows", "max_age_s", "compress", "spool_dir",
                            "storage_options", "name"})
RECENT_IDS: Final = 10_000  # ids of payloads already written, to skip what a crash makes the follower re-send


class UsageBatcher:
    """Batch usage payloads into NDJSON objects under `dest` (a directory or s3://bucket/prefix).

    Args:
        dest: where objects go; `dt=YYYY-MM-DD/hour=HH/<time>-<uuid>.ndjson.gz` below it.
        max_bytes, max_rows, max_age_s: the limits that cut a batch (10 MB, 100 rows, 5 s).
        compress: gzip the objects (default True).
        spool_dir: the local spool (default `<dest>/_spool` for a directory, `~/.cache/vibekit-telemetry/
            usage-spool/<hash>` for object storage); one per process.
        storage_options: passed to fsspec (e.g. endpoint_url, key, secret for s3fs).
    """

    def __init__(self, dest: str, *, max_bytes: int = 10 * 1024 * 1024, max_rows: int = 100,
                 max_age_s: float = 5.0, compress: bool = True, spool_dir: str | None = None,
                 storage_options: dict[str, Any] | None = None, name: str | None = None,
                 field: str = "usage-batches") -> None:
        for key, value, low in (("max_bytes", max_bytes, 1), ("max_rows", max_rows, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValidationError(f"{field}.{key}", "an integer >= 1", value)
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, int | float) or not max_age_s > 0:
            raise ValidationError(f"{field}.max_age_s", "a number of seconds > 0", max_age_s)
        if not isinstance(compress, bool):
            raise ValidationError(f"{field}.compress", "true or false", compress)
        self.destination = Destination(dest, storage_options, f"{field}.dest")
        self.max_bytes, self.max_rows, self.max_age_s, self.compress = max_bytes, max_rows, float(max_age_s), compress
        self.name = name or f"usage-batches:{self.destination.dest}"
        self.batch_size = max_rows  # events per export() call: a row-limited batch fits in one call
        if spool_dir is None:
            digest = hashlib.sha1(self.destination.dest.encode()).hexdigest()[:12]
            spool_dir = (str(Path.home() / ".cache" / "vibekit-telemetry" / "usage-spool" / digest)
                         if is_remote(dest) else str(Path(self.destination.root) / "_spool"))
        self.spool = Spool(Path(spool_dir))
        self._lock = threading.Condition()
        self._rows = self.spool.load()  # replayed: acknowledged payloads a crash kept from their batch
        self._ids = {i for i, _ in self._rows}
        self._recent: deque[str] = deque(maxlen=RECENT_IDS)
        self._recent_set: set[str] = set()
        self._size = sum(len(line) for _, line in self._rows)
        self._oldest = time.monotonic() if self._rows else None
        self.objects_written = 0
        self.rows_written = 0
        self.last_object: str | None = None
        self.last_error: str | None = None
        self._closed = False
        self._timer = threading.Thread(target=self._age_loop, name=f"vibekit-{self.name}", daemon=True)
        self._timer.start()

    # -- the Exporter interface ------------------------------------------------------------------

    def export(self, events: list[TelemetryEvent]) -> None:
        """Spool the batch's usage payloads (fsynced), then write every batch that reached a limit."""
        fresh: list[tuple[str, bytes]] = []
        seen: set[str] = set()
        for event in events:
            data = from_event(event)
            eid = event.event_id or ""
            if data is None or eid in seen or eid in self._ids or eid in self._recent_set:
                continue
            seen.add(eid)
            fresh.append((eid, json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"))
        with self._lock:
            if fresh:
                self.spool.append(fresh)
                if self._oldest is None:
                    self._oldest = time.monotonic()
                self._rows.extend(fresh)
                self._ids.update(i for i, _ in fresh)
                self._size += sum(len(line) for _, line in fresh)
                self._lock.notify_all()
            self._cut_full()

    def shutdown(self) -> None:
        """Write what is spooled as a last batch (it stays spooled if that fails), stop the timer."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            try:
                self.flush()
            except Exception as exc:  # kept in the spool: written on the next start
                logger.warning("%s: last batch not written, kept in the spool: %s", self.name, exc)
        self._timer.join(2.0)
        self.spool.close()

    # -- cutting ---------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything spooled now, in limit-sized batches; return the objects written."""
        with self._lock:
            written = self._cut_full()
            while self._rows:
                self._cut(self._take())
                written += 1
            return written

    def _take(self) -> int:
        """How many of the oldest rows make the next batch within max_rows and max_bytes (at least one)."""
        count, size = 0, 0
        for _, line in self._rows[:self.max_rows]:
            if count and size + len(line) > self.max_bytes:
                break
            count += 1
            size += len(line)
        return count

    def _cut_full(self) -> int:
        written = 0
        while self._rows:
            count = self._take()
            if count < self.max_rows and count == len(self._rows) and self._size < self.max_bytes:
                break  # neither limit reached: wait for more rows or the age limit
            self._cut(count)
            written += 1
        return written

    def _cut(self, count: int) -> None:
        """Write the oldest `count` rows as one object, then drop them from the spool."""
        rows = self._rows[:count]
        body = encode([line for _, line in rows], self.compress)
        try:
            self.last_object = self.destination.put(object_name(time.time(), self.compress), body)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            raise
        rest = self._rows[count:]
        self.spool.rewrite(rest)
        self._rows = rest
        self._size -= sum(len(line) for _, line in rows)
        for i, _ in rows:
            self._ids.discard(i)
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(i)
            self._recent_set.add(i)
        self._oldest = time.monotonic() if rest else None
        self.objects_written += 1
        self.rows_written += len(rows)

    def _age_loop(self) -> None:
        """Cut a batch whose oldest row reached max_age_s (the time limit), on its own thread."""
        with self._lock:
            while not self._closed:
                if self._oldest is None:
                    self._lock.wait()
                    continue
                left = self._oldest + self.max_age_s - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                try:
                    self._cut(self._take())
                except Exception as exc:  # destination down: try again after another max_age_s
                    logger.warning("%s: batch not written yet, kept in the spool: %s", self.name, exc)
                    self._oldest = time.monotonic()

    def status(self) -> dict[str, Any]:
        """Spooled rows and bytes, objects and rows written, the last object and error."""
        with self._lock:
            return {"spooled_rows": len(self._rows), "spooled_bytes": self._size,
                    "objects_written": self.objects_written, "rows_written": self.rows_written,
                    "last_object": self.last_object, "last_error": self.last_error}


def pipeline_storage(config_kwargs: dict[str, Any], dest: str, options: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Return the storage entries of a configuration plus a usage-batches exporter into `dest`.

    `options` are `KEY=VALUE` texts (values read as JSON when they parse): batching options by name,
    anything else an fsspec storage option. The exporter starts at the beginning of the store the
    first time, so payloads already committed are batched too.
    """
    from ..config import load_config

    mine: dict[str, Any] = {"dest": dest, "start_at": "beginning"}
    storage: dict[str, Any] = {}
    for item in options:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError("--pipeline-option", "KEY=VALUE", item)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        (mine if key in OPTIONS - {"dest", "storage_options"} else storage)[key.strip()] = value
    if storage:
        mine["storage_options"] = storage
    entries = [{"type": e.type, "enabled": True, "options": dict(e.options)}
               for e in load_config(**config_kwargs).storage_entries()]
    return [*entries, {"type": "usage-batches", "options": mine}]


def build_usage_batches(options: dict[str, Any], field: str) -> UsageBatcher:
    """Registry factory for `{"type": "usage-batches", "options": {"dest": ..., ...}}`."""
    check_options(options, OPTIONS, field, {"dest": "a directory or s3://bucket/prefix (required)"})
    return UsageBatcher(**options, field=field)


build_usage_batches.kind = "exporter"  # type: ignore[attr-defined]
