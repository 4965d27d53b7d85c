"""The built-in plugins of seed 001: CachePlugin, S3ExportPlugin, CompliancePlugin, EncryptionPlugin.

Each reuses the capability it names: the export code (export/), the privacy retention and the
encryption at rest (privacy/); the plugin only decides when and with what settings they run.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent, now_ms
from .base import Plugin, QueryResult

REGULATIONS: Final = ("gdpr", "ccpa")


def _scheduler(telemetry: Any, plugin: str) -> Any:
    runtime = getattr(telemetry, "runtime", None)
    if runtime is None:
        raise ValidationError(f"{plugin}.telemetry", "a recording Telemetry (this one is disabled)")
    return runtime.scheduler


def _seconds(value: str | float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError(field, "seconds (a number > 0) or a duration such as '1h'", value)
    if isinstance(value, str):
        from ..timeparse import duration_ms

        return duration_ms(value, field) / 1000
    if value <= 0:
        raise ValidationError(field, "a number of seconds > 0", value)
    return float(value)


class CachePlugin(Plugin):
    """Caches query, session and stats answers for `ttl_s` seconds (at most `max_size`); writes invalidate it."""

    name = "cache"

    def __init__(self, ttl_s: float = 60.0, max_size: int = 256) -> None:
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or ttl_s <= 0:
            raise ValidationError("cache.ttl_s", "a number of seconds > 0", ttl_s)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValidationError("cache.max_size", "an integer >= 1", max_size)
        self.ttl_s = float(ttl_s)
        self.max_size = max_size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._asked: dict[tuple[str, str], int] = {}  # key -> write generation when the query began
        self._generation = 0
        self._lock = threading.Lock()

    def _invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def before_query(self, kind: str, filter: Any) -> Any:
        """Answer from the cache when a fresh entry is there."""
        key = (kind, repr(filter))
        with self._lock:
            found = self._entries.get(key)
            if found is not None and found[0] > time.monotonic():
                self._entries.move_to_end(key)
                self.hits += 1
                return QueryResult(found[1])
            self.misses += 1
            self._asked[key] = self._generation
        return None

    def after_query(self, kind: str, filter: Any, result: Any) -> Any:
        """Keep the answer, unless a write happened while the store was answering."""
        key = (kind, repr(filter))
        with self._lock:
            if self._asked.pop(key, None) == self._generation:
                self._entries[key] = (time.monotonic() + self.ttl_s, result)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
        return None

    def before_store(self, event: TelemetryEvent) -> TelemetryEvent:
        """A write is coming: what is cached may be stale."""
        self._invalidate()
        return event

    def after_store(self, events: list[TelemetryEvent]) -> None:
        """A write is committed: drop what a query cached between before_store and the commit."""
        self._invalidate()

    def stats(self) -> dict[str, int]:
        """Hits, misses and entries."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}


class S3ExportPlugin(Plugin):
    """Exports new events every `every` to `url` (s3://bucket/prefix, or any fsspec URL or directory)."""

    name = "s3-export"

    def __init__(self, url: str, *, format: str = "ndjson", every: str | float = "1h",
                 compression: str | None = None, filter: Mapping[str, Any] | None = None) -> None:
        from ..export.exports import check_format

        if not isinstance(url, str) or not url:
            raise ValidationError("s3-export.url", "an s3:// URL (or another fsspec URL or a directory)", url)
        from ..export import compression as comp

        self.url = url.rstrip("/")
        self.format = check_format(format)
        self.every_s = _seconds(every, "s3-export.every")
        self.compression = compression if self.format == "parquet" else \
            comp.normalise(compression, "s3-export.compression")  # Parquet's codecs are checked by the export
        # The file name says how it is compressed (Parquet compresses inside the file).
        self.suffix = "" if self.format == "parquet" or self.compression in (None, "none") else \
            {"gzip": ".gz", "brotli": ".br", "zstd": ".zst"}[self.compression]
        self.new_events = 0  # committed since the last run (after_store): nothing new, no empty file
        self.filter = dict(filter or {})
        self.since: int | None = None  # the next window's start (ms); None: everything so far
        self.results: list[Any] = []
        self._telemetry: Any = None
        self._lock = threading.Lock()

    def initialize(self, telemetry: Any) -> None:
        """Schedule the export on the Telemetry's scheduler."""
        self._telemetry = telemetry
        _scheduler(telemetry, "s3-export").every(f"plugin:{self.name}", self.every_s, self._scheduled)

    def after_store(self, events: list[TelemetryEvent]) -> None:
        """Count what is new, so a run with nothing new writes no file."""
        with self._lock:  # this may arrive after a run() that already exported them: count only later ones
            since = self.since
            self.new_events += sum(1 for e in events if since is None or e.timestamp >= since)

    def run(self) -> Any:
        """Export the events timestamped since the previous run now; return the ExportResult."""
        from ..export.exports import export_events
        from ..export.writers import FORMAT_EXTENSIONS

        with self._lock:  # the scheduler and a caller may both run it
            until = now_ms()
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(until / 1000)) + f".{until % 1000:03d}Z"
            chosen = {**self.filter, "until": until, **({"since": self.since} if self.since is not None else {})}
            name = f"events-{stamp}{FORMAT_EXTENSIONS[self.format]}{self.suffix}"
            result = export_events(self._telemetry.store, self.format, filter=chosen, compression=self.compression,
                                   output_path=f"{self.url}/{name}")
            self.since = until + 1
            self.new_events = 0
            self.results.append(result)
            return result

    def _scheduled(self) -> None:
        if self.since is None or self.new_events:
            self.run()

    def shutdown(self) -> None:
        """Export what came in since the last run, so nothing recorded is left out."""
        if self._telemetry is not None and self.since is not None and self.new_events:
            self.run()


class CompliancePlugin(Plugin):
    """Applies a regulation's retention with the privacy retention code: delete after N days, anonymise (GDPR)."""

    name = "compliance"

    def __init__(self, regulations: Sequence[str] = ("gdpr",), retention_days: float = 365,
                 anonymize_after_days: float | None = None, interval: str | float = "1h",
                 user_fields: Sequence[str] | None = None) -> None:
        from ..config import RetentionConfig

        chosen = [regulations] if isinstance(regulations, str) else list(regulations)
        for index, regulation in enumerate(chosen):
            if not isinstance(regulation, str) or regulation.lower() not in REGULATIONS:
                raise ValidationError(f"compliance.regulations[{index}]", "one of " + ", ".join(REGULATIONS),
                                      regulation)
        self.regulations = [r.lower() for r in chosen]
        if isinstance(retention_days, bool) or not isinstance(retention_days, (int, float)) or retention_days <= 0:
            raise ValidationError("compliance.retention_days", "a number of days > 0", retention_days)
        # GDPR's storage limitation: identifying fields go well before the events (30 days unless told).
        if anonymize_after_days is None and "gdpr" in self.regulations:
            anonymize_after_days = min(30.0, float(retention_days))
        fields = {"user_fields": list(user_fields)} if user_fields is not None else {}
        try:
            self.retention = RetentionConfig(delete_after=retention_days, anonymize_after=anonymize_after_days,
                                             **fields)
        except Exception as exc:
            raise ValidationError("compliance.anonymize_after_days", "a number of days > 0",
                                  anonymize_after_days) from exc
        self.interval_s = _seconds(interval, "compliance.interval")
        self.last: dict[str, int] | None = None
        self._telemetry: Any = None

    def initialize(self, telemetry: Any) -> None:
        """Schedule the retention run (first one a second after start)."""
        self._telemetry = telemetry
        _scheduler(telemetry, "compliance").every(f"plugin:{self.name}", self.interval_s, self.run, first_in=1.0)

    def run(self, now: int | None = None) -> dict[str, int]:
        """Apply the retention now; return how many events were anonymised and deleted."""
        from ..privacy.retention import apply_retention

        self.last = apply_retention(self._telemetry.store, self.retention, now)
        return self.last


class EncryptionPlugin(Plugin):
    """Encrypts label, stream data and metadata at rest in the SQL stores (privacy/crypto, extra `crypto`)."""

    name = "encryption"

    def __init__(self, key: str | None = None, *, passphrase: str | None = None,
                 old_keys: Sequence[str] = ()) -> None:
        from ..privacy.crypto import StoreEncryption

        self.encryption = StoreEncryption(key=key, passphrase=passphrase, old_keys=old_keys)
        self.stores = 0

    def initialize(self, telemetry: Any) -> None:
        """Give every SQL store this encryption (for writes from now on; reads decrypt any known key)."""
        from ..store.sql import SQLStore

        for provider in telemetry.providers:
            if isinstance(provider, SQLStore):
                self.encryption.open(provider.engine)
                provider.encryption = self.encryption
                self.stores += 1
        if not self.stores:
            raise ValidationError("encryption.storage", "a SQL store (sqlite or postgresql) to encrypt")
