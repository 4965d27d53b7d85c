"""Build storage providers from configuration entries, through the registry (vibekit_telemetry.registry)."""

from __future__ import annotations

import importlib
import os
from typing import Any

from .. import registry
from ..config import DEFAULT_DB_PATH, StorageConfig, TelemetryConfig
from ..errors import StoreError, ValidationError
from .base import QueryableStore, StorageProvider

# Batching options given in a storage entry were moved to the writer's settings by TelemetryConfig.
_SQLITE_OPTIONS = {"path", "enable_indexes", "text_index", "busy_timeout_ms", "prune_days", "max_size_mb", "wal",
                   "enable_wal"}
_POSTGRES_OPTIONS = frozenset({"url", "dsn", "partition", "lock_timeout_ms", "prune_days"})


def _load_object(spec: Any, field: str) -> Any:
    if isinstance(spec, str):
        module_name, _, attr = spec.partition(":")
        if not attr:
            raise ValidationError(field, "'package.module:ClassName'", spec)
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValidationError(field, f"an importable provider ({exc})", spec) from None
        return target() if isinstance(target, type) else target
    return spec


def build_sqlite(options: dict[str, Any], field: str) -> StorageProvider:
    """Registry factory for `{"type": "sqlite", "options": {"path": ...}}`."""
    registry.check_options(options, _SQLITE_OPTIONS, field)
    from .sql import SQLStore

    path = options.get("path")
    if path is not None and not isinstance(path, str | os.PathLike):
        raise ValidationError(f"{field}.path", "a file path (or ':memory:')", path)
    wal_name = "wal" if "wal" in options else "enable_wal"
    return SQLStore(
        str(path or DEFAULT_DB_PATH),
        enable_indexes=bool(registry.bool_option(options, "enable_indexes", field, True)),
        busy_timeout_ms=_busy_timeout(options, "busy_timeout_ms", field, minimum=0, holder="connection"),
        prune_days=_prune_days(options, field),
        max_size_mb=registry.number_option(options, "max_size_mb", field, None, minimum=0, above=True,
                                           what="prune() deletes the oldest events past this size"),
        wal=bool(registry.bool_option(options, wal_name, field, True)),
        text_index=registry.bool_option(options, "text_index", field, None),
    )


def _busy_timeout(options: dict[str, Any], name: str, field: str, *, minimum: int, holder: str) -> int:
    """How long a statement waits for another connection's lock, in milliseconds (at most 10 minutes)."""
    return int(registry.number_option(options, name, field, 5000, minimum=minimum, maximum=600_000, integer=True,
                                      what=f"milliseconds a statement waits for another {holder}'s lock"))


def _prune_days(options: dict[str, Any], field: str) -> float | None:
    # 0 or less would put the cut-off at now or in the future: prune() would delete every event.
    value = registry.number_option(options, "prune_days", field, None, minimum=0, above=True,
                                   what="prune() deletes events older than this many days")
    return None if value is None else float(value)


def build_postgres(options: dict[str, Any], field: str) -> StorageProvider:
    """Registry factory for `{"type": "postgresql", "options": {"url": "postgresql://..."}}`."""
    from .sql.pool import POOL_OPTIONS

    registry.check_options(options, _POSTGRES_OPTIONS | POOL_OPTIONS, field)
    url = options.get("url") or options.get("dsn")
    if not isinstance(url, str) or not url:
        raise ValidationError(f"{field}.url", "a postgresql:// URL", url)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    from .sql import SQLStore
    from .sql.partitions import INTERVALS
    from .sql.pool import PoolOptions

    pool = PoolOptions.parse(options, field) if POOL_OPTIONS & set(options) else None
    partition = options.get("partition", "day")
    if partition not in INTERVALS:
        raise ValidationError(f"{field}.partition", "day or week (the range of one events partition)", partition)
    # PostgreSQL reads 0 as no limit at all: 1 ms at least.
    lock_timeout = _busy_timeout(options, "lock_timeout_ms", field, minimum=1, holder="session")
    return SQLStore(url, prune_days=_prune_days(options, field), pool=pool, partition=partition,
                    busy_timeout_ms=lock_timeout)


def build_memory(options: dict[str, Any], field: str) -> StorageProvider:
    """Registry factory for `{"type": "memory"}`."""
    from .memory import MemoryStore

    return MemoryStore()


def build_custom(options: dict[str, Any], field: str) -> StorageProvider:
    """Registry factory for `{"type": "custom", "options": {"provider": "package.module:Class"}}`."""
    provider = _load_object(options.get("provider") or options.get("class"), f"{field}.provider")
    if provider is None or not callable(getattr(provider, "store_batch", None)):
        raise ValidationError(f"{field}.provider", "an object with a store_batch(events) method", provider)
    return provider  # type: ignore[no-any-return]


def build_provider(entry: StorageConfig, index: int) -> StorageProvider:
    """Create the store one storage entry describes (not yet initialized); exporter types are refused."""
    kind, built = registry.build(entry.type, entry.options, field=f"storage[{index}]")
    if kind != "store":
        raise ValidationError(f"storage[{index}].type", "a store type (exporters are built by ExporterSet)",
                              entry.type)
    return built  # type: ignore[no-any-return]


def build_providers(config: TelemetryConfig, entries: list[StorageConfig] | None = None) -> list[StorageProvider]:
    """Create every enabled store of a config (or of its `entries`, already read), in order.

    The first queryable one answers reads.

    Entries of exporter types (webhook, ...) are skipped here: exporters follow the primary store
    on their own threads (exporters.ExporterSet), they are not written to by the writer.
    """
    entries = config.storage_entries() if entries is None else entries
    providers = [build_provider(entry, i) for i, entry in enumerate(entries)
                 if registry.kind_of(entry.type, f"storage[{i}].type") == "store"]
    for obj in config.providers:
        if not callable(getattr(obj, "store_batch", None)):
            raise ValidationError("storage", "provider objects with a store_batch(events) method", obj)
        providers.append(obj)
    _attach_encryption(providers, config)
    return providers


def _attach_encryption(providers: list[StorageProvider], config: TelemetryConfig) -> None:
    """Give the SQL stores the config's encryption at rest (security.encryption, TELEMETRY_ENCRYPTION_KEY)."""
    from ..privacy.crypto import from_config

    encryption = from_config(config.security.encryption)
    if encryption is None:
        return
    from .sql import SQLStore

    for provider in providers:
        if isinstance(provider, SQLStore):
            provider.encryption = encryption


def primary_store(config: TelemetryConfig) -> QueryableStore:
    """Return the config's first queryable store, built but not opened (StoreError when there is none)."""
    for provider in build_providers(config):
        if getattr(provider, "supports_query", False):  # the flag every provider declares
            return provider  # type: ignore[return-value]
    raise StoreError("the configuration names no queryable store (sqlite, postgresql or memory)")


def open_store(config: TelemetryConfig) -> QueryableStore:
    """Open the config's primary store alone, to read or maintain it: no writer thread, no other providers.

    The schema is brought to the head version as Telemetry would; shut the store down after use.
    """
    store = primary_store(config)
    store.initialize()
    return store
