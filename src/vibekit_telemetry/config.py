"""Configuration: keyword arguments, then environment variables, then a TOML file, then defaults."""

from __future__ import annotations

import logging
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_snake

from .config_sections import (
    AnalyticsConfig,
    ApiAuthConfig,
    ApiConfig,
    ApiCorsConfig,
    ApiRateLimitConfig,
    AuditConfig,
    CircuitBreakerConfig,
    DashboardConfig,
    DataMinimizationConfig,
    EncryptionConfig,
    ExportSettings,
    LocalStoreConfig,
    PiiConfig,
    PiiDetectorConfig,
    RedactionConfig,
    ReliabilityConfig,
    RetentionConfig,
    RetryConfig,
    SecurityConfig,
    StorageConfig,
    StreamingConfig,
    TrackRateLimitConfig,
    _Section,
)
from .errors import ValidationError

if TYPE_CHECKING:
    from .config_check import UnknownOption

# The section models live in config_sections.py; listed here too so `from vibekit_telemetry.config import X`
# keeps working for every config name.
__all__ = [
    "DEFAULT_CONFIG_PATH", "DEFAULT_DB_PATH", "ENV_ALLOWED_ORIGINS", "ENV_API_KEYS", "ENV_AUTH_ENABLED",
    "ENV_BEARER_TOKENS", "ENV_CONFIG", "ENV_DATABASE_URL", "ENV_DB_PATH", "ENV_DISABLED", "ENV_DO_NOT_TRACK",
    "ENV_FIELDS", "ENV_MAX_BODY_BYTES", "ENV_RATE_LIMIT", "ENV_REDIS_URL", "ENV_STORE_OPTIONS", "AnalyticsConfig",
    "ApiAuthConfig", "ApiConfig", "ApiCorsConfig", "ApiRateLimitConfig", "AuditConfig", "CircuitBreakerConfig",
    "DashboardConfig", "DataMinimizationConfig", "EncryptionConfig", "ExportSettings", "LocalStoreConfig",
    "PiiConfig", "PiiDetectorConfig", "RedactionConfig", "ReliabilityConfig", "RetentionConfig", "RetryConfig",
    "SecurityConfig", "StorageConfig", "StreamingConfig", "TelemetryConfig", "TrackRateLimitConfig",
    "config_file_path", "default_config_toml", "load_config", "read_config_file", "tracking_disabled_by_env",
]

logger = logging.getLogger("vibekit_telemetry")

DEFAULT_DB_PATH: Final = ".vibekit/telemetry.db"
DEFAULT_CONFIG_PATH: Final = ".vibekit/telemetry.toml"

# Environment variables, each documented in docs/configuration.md.
ENV_CONFIG: Final = "TELEMETRY_CONFIG"
ENV_DB_PATH: Final = "TELEMETRY_DB_PATH"
ENV_DATABASE_URL: Final = "TELEMETRY_DATABASE_URL"
ENV_DISABLED: Final = "TELEMETRY_DISABLED"
ENV_DO_NOT_TRACK: Final = "DO_NOT_TRACK"
ENV_FIELDS: Final = {
    "TELEMETRY_SERVICE_NAME": "service_name",
    "TELEMETRY_SERVICE_VERSION": "service_version",
    "TELEMETRY_ENVIRONMENT": "environment",
    "TELEMETRY_STREAM_BATCH_SIZE": "stream_batch_size",
    "TELEMETRY_FLUSH_INTERVAL_MS": "stream_flush_interval_ms",
    "TELEMETRY_MAX_QUEUE_SIZE": "max_queue_size",
    "TELEMETRY_BACKPRESSURE": "backpressure",
    "TELEMETRY_MAX_FIELD_LENGTH": "max_field_length",
    "TELEMETRY_RAISE_ON_ERROR": "raise_on_error",
    "TELEMETRY_DEBUG": "debug",
    "TELEMETRY_SERVER_URL": "server_url",  # forwarding to a central server (issue 16)
    "TELEMETRY_API_KEY": "server_api_key",
    "TELEMETRY_WRITER_PROCESS": "writer_process",
}
ENV_STORE_OPTIONS: Final = {
    "TELEMETRY_PRUNE_DAYS": "prune_days",
    "TELEMETRY_MAX_SIZE_MB": "max_size_mb",
}
# The API server's variables (read by vibekit_telemetry.server.settings, over the `api` section).
ENV_AUTH_ENABLED: Final = "TELEMETRY_AUTH_ENABLED"
ENV_API_KEYS: Final = "TELEMETRY_API_KEYS"
ENV_BEARER_TOKENS: Final = "TELEMETRY_BEARER_TOKENS"
ENV_ALLOWED_ORIGINS: Final = "TELEMETRY_ALLOWED_ORIGINS"
ENV_RATE_LIMIT: Final = "TELEMETRY_RATE_LIMIT"
ENV_REDIS_URL: Final = "TELEMETRY_REDIS_URL"
ENV_MAX_BODY_BYTES: Final = "TELEMETRY_MAX_BODY_BYTES"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class TelemetryConfig(_Section):
    """Everything a Telemetry instance can be told; seed 001's TelemetryConfig in Python spelling."""

    service_name: str = "vibekit-telemetry"
    service_version: str = "0.0.0"
    environment: str | None = None
    storage: list[StorageConfig] = Field(default_factory=list)
    # Custom provider objects given directly in the storage list (anything with store_batch).
    providers: list[Any] = Field(default_factory=list)
    db_path: str | None = None
    database_url: str | None = None
    local_store: LocalStoreConfig | None = None
    stream_batch_size: int = Field(50, ge=1, le=100_000)
    stream_flush_interval_ms: int = Field(1000, ge=1, le=3_600_000)
    max_batch_size: int = Field(5000, ge=1, le=1_000_000)
    # 50k queued events hold ~12 MB; a 1M-event burst measured 20 MB less RSS than at 100k, as fast.
    max_queue_size: int = Field(50_000, ge=1, le=100_000_000)
    backpressure: Literal["block", "drop_newest", "drop_oldest"] = "block"
    block_timeout_ms: int = Field(100, ge=0, le=600_000)
    # Commit in a child process of its own (SQL stores; docs/pipeline.md): the caller's threads and the commit
    # then run on two cores. None: off in the SDK, on in `telemetry api` on SQLite.
    writer_process: bool | None = None
    max_field_length: int = Field(65_536, ge=16)
    retry_attempts: int = Field(5, ge=0, le=1000)
    retry_delay_ms: int = Field(100, ge=0, le=60_000)
    maintenance_interval_s: float = Field(300.0, gt=0)
    # How often the writer saves its metrics in the store (writer_runs) for `telemetry stats --performance`.
    writer_stats_interval_s: float = Field(5.0, ge=0.1)
    raise_on_error: bool = False
    # The chain's `sample` step: the share of sessions kept (decided per session id); errors kept whole.
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    keep_errors: bool = True
    disabled: bool = False
    debug: bool = False
    context: dict[str, Any] = Field(default_factory=dict)
    streaming: StreamingConfig = Field(default_factory=StreamingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    exports: ExportSettings = Field(default_factory=ExportSettings)
    plugins: list[Any] = Field(default_factory=list)
    # Plugins (issue 15, docs/plugins.md): each hook call waits this long at most; this many failures in a
    # row disable a plugin (0: never).
    plugin_timeout_s: float = Field(1.0, gt=0, le=600)
    plugin_max_failures: int = Field(10, ge=0)
    # How long shutdown() waits for exporters to deliver what is committed (the rest goes on the next start).
    exporter_shutdown_timeout_s: float = Field(5.0, ge=0, le=600)
    # Your own chain steps (objects with `name` and process(event) -> event | None), run before truncate.
    processors: list[Any] = Field(default_factory=list)
    # Seed 003's OpenTelemetry switch, TelemetryService({isEnabled, endpoint}): sessions go as OTLP traces to
    # `endpoint` (an "otlp" exporter entry with default options; docs/otlp.md) while is_enabled.
    endpoint: str | None = None
    is_enabled: bool = True
    # Issue 16: forward what the local store commits to a central `telemetry api` (a "server" exporter
    # entry with default options; docs/scale.md). The key is sent as X-API-Key.
    server_url: str | None = None
    server_api_key: str | None = Field(None, repr=False)

    def model_post_init(self, __context: Any) -> None:
        """Let batching options given inside a storage entry (seed 001) or localStore (seed 003) apply."""
        for entry in self.storage:
            # Storage options arrive in the seeds' camelCase (streamBatchSize, maxSizeMB) too.
            entry.options = {to_snake(key): value for key, value in entry.options.items()}
            batch = entry.options.pop("stream_batch_size", None)
            interval = entry.options.pop("stream_flush_interval", entry.options.pop("stream_flush_interval_ms", None))
            self._writer_options(batch, interval, over_explicit=False)
        if self.local_store is not None:
            local = self.local_store
            self._writer_options(local.stream_batch_size, local.stream_flush_interval_ms, over_explicit=True)

    def _writer_options(self, batch: Any, interval: Any, *, over_explicit: bool) -> None:
        """Apply a storage block's batch size and flush interval (None: not given there)."""
        # A seed 001 storage entry yields to top-level options given explicitly; seed 003's localStore wins.
        if batch is not None and (over_explicit or "stream_batch_size" not in self.model_fields_set):
            self.stream_batch_size = int(batch)
        if interval is not None and (over_explicit or "stream_flush_interval_ms" not in self.model_fields_set):
            self.stream_flush_interval_ms = int(interval)

    def storage_entries(self) -> list[StorageConfig]:
        """Return the enabled storage entries, with the SQLite default filled in."""
        entries = [s for s in self.storage if s.enabled]
        if self.local_store is not None and self.local_store.is_enabled:
            entries.insert(0, StorageConfig(type="sqlite", options=_local_store_options(self.local_store)))
        if not self.storage and self.local_store is None and not self.providers:
            if self.database_url:
                entries = [StorageConfig(type="postgresql", options={"url": self.database_url})]
            else:
                entries = [StorageConfig(type="sqlite", options={"path": self.db_path or DEFAULT_DB_PATH})]
        elif self.db_path:
            # An explicit db_path points the first SQLite entry at it.
            for entry in entries:
                if isinstance(entry, StorageConfig) and entry.type == "sqlite":
                    entry.options = {**entry.options, "path": self.db_path}
                    break
        _apply_env_store_options(entries)
        if self.endpoint and self.is_enabled:
            entries.append(StorageConfig(type="otlp", options={"endpoint": self.endpoint}))
        if self.server_url and not any(e.type == "server" for e in entries):
            server = {"url": self.server_url, **({"api_key": self.server_api_key} if self.server_api_key else {})}
            entries.append(StorageConfig(type="server", options=server))
        return entries


def _local_store_options(local: LocalStoreConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"path": local.path or DEFAULT_DB_PATH, "enable_indexes": local.enable_indexes,
                               "wal": local.enable_wal}
    if local.prune_days is not None:
        options["prune_days"] = local.prune_days
    if local.max_size_mb is not None:
        options["max_size_mb"] = local.max_size_mb
    return options


def _apply_env_store_options(entries: list[StorageConfig]) -> None:
    """TELEMETRY_PRUNE_DAYS / TELEMETRY_MAX_SIZE_MB: retention of the first SQL store, unless its entry sets it.

    A value that is not a number > 0 is ignored with a warning, as a bad value of any TELEMETRY_*
    variable is (0 or less would delete every event).
    """
    first = next((e for e in entries if isinstance(e, StorageConfig) and e.type in ("sqlite", "postgresql")), None)
    if first is None:
        return
    for env_name, option in ENV_STORE_OPTIONS.items():
        raw = os.environ.get(env_name, "").strip()
        if not raw or option in first.options or (option == "max_size_mb" and first.type != "sqlite"):
            continue
        value = env_store_value(env_name)
        if value is None:
            logger.warning("ignoring %s=%r: expected a number > 0", env_name, raw)
            continue
        first.options = {**first.options, option: value}


def env_store_value(env_name: str) -> float | None:
    """The number a TELEMETRY_PRUNE_DAYS / TELEMETRY_MAX_SIZE_MB variable sets; None when unset or not > 0."""
    try:
        value = float(os.environ.get(env_name, "").strip())
    except ValueError:
        return None
    return value if value > 0 and not math.isinf(value) else None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def tracking_disabled_by_env() -> bool:
    """Return True when TELEMETRY_DISABLED or DO_NOT_TRACK asks for no tracking."""
    return _env_flag(ENV_DISABLED) or _env_flag(ENV_DO_NOT_TRACK)


def _env_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for env_name, field_name in ENV_FIELDS.items():
        raw = os.environ.get(env_name)
        if raw is None or raw == "":
            continue
        try:
            # Validate each variable alone so one bad value is reported and replaced by its default.
            TelemetryConfig.model_validate({field_name: raw})
        except PydanticValidationError as exc:
            logger.warning("ignoring %s=%r: %s", env_name, raw, exc.errors()[0]["msg"])
            continue
        values[field_name] = raw
    if os.environ.get(ENV_DB_PATH):
        values["db_path"] = os.environ[ENV_DB_PATH]
    if os.environ.get(ENV_DATABASE_URL):
        values["database_url"] = os.environ[ENV_DATABASE_URL]
    if tracking_disabled_by_env():
        values["disabled"] = True
    return values


def config_file_path(config_file: str | os.PathLike[str] | None = None) -> str | os.PathLike[str] | None:
    """Return the config file in force: the one given, else TELEMETRY_CONFIG, else the default if it exists."""
    file_path = config_file or os.environ.get(ENV_CONFIG)
    if file_path is None and Path(DEFAULT_CONFIG_PATH).is_file():
        file_path = DEFAULT_CONFIG_PATH
    return file_path


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file (the one `telemetry init` writes) into a dict."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError("config_file", "an existing TOML file", str(file)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError("config_file", f"valid TOML ({exc})", str(file)) from None
    section = data.get("telemetry", data)
    if not isinstance(section, dict):
        raise ValidationError("config_file", "a [telemetry] table", str(file))
    return section


def _raise_named(exc: PydanticValidationError) -> ValidationError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "config"
    return ValidationError(field, first["msg"].lower(), first.get("input", ...))


def load_config(config: TelemetryConfig | Mapping[str, Any] | None = None,
                *, config_file: str | os.PathLike[str] | None = None, **kwargs: Any) -> TelemetryConfig:
    """Merge explicit options over environment variables over the config file over defaults."""
    file_path = config_file_path(config_file)
    merged: dict[str, Any] = read_config_file(file_path) if file_path else {}
    file_values = dict(merged)
    merged.update(_env_values())
    if isinstance(config, TelemetryConfig):
        merged.update(config.model_dump(exclude_unset=True, by_alias=False))
    elif config is not None:
        if not isinstance(config, Mapping):
            raise ValidationError("config", "a TelemetryConfig or a dict", config)
        merged.update(config)
    merged.update(kwargs)
    _check_unknown(file_values, file_path, config, kwargs, merged)
    storage = merged.get("storage")
    if isinstance(storage, list | tuple):
        # Provider objects ride beside the validated entries; pydantic would not know what to do with them.
        objects = [s for s in storage if not isinstance(s, Mapping | StorageConfig)]
        if objects:
            merged["storage"] = [s for s in storage if isinstance(s, Mapping | StorageConfig)]
            merged["providers"] = [*merged.get("providers", []), *objects]
    try:
        return TelemetryConfig.model_validate(merged)
    except PydanticValidationError as exc:
        raise _raise_named(exc) from None


def _check_unknown(file_values: Mapping[str, Any], file_path: Any, config: Any, kwargs: Mapping[str, Any],
                   merged: Mapping[str, Any]) -> None:
    """Warn about unknown options with the closest known one (raise when raise_on_error): config_check.py."""
    from .config_check import report_unknown, unknown_options

    found = [*unknown_options(file_values, TelemetryConfig, f"the config file {file_path}"),
             *unknown_options(config if isinstance(config, Mapping) else {}, TelemetryConfig, "the config dict"),
             *unknown_options(kwargs, TelemetryConfig, "keyword arguments"),
             *_unknown_env()]
    report_unknown(found, raise_on_error=str(merged.get("raise_on_error", "")).lower() in _TRUE)


def _unknown_env() -> list[UnknownOption]:
    from .config_check import unknown_env

    return list(unknown_env({ENV_CONFIG, ENV_DB_PATH, ENV_DATABASE_URL, ENV_DISABLED, *ENV_FIELDS,
                             *ENV_STORE_OPTIONS}))


def unknown_config_options(config_file: str | os.PathLike[str] | None = None) -> list[UnknownOption]:
    """Unknown keys of the config file in force (nested sections too) and misspelt TELEMETRY_* variables.

    Each names where it was given and the closest known option; what `telemetry config check` and
    `telemetry api`'s start-up lines show.
    """
    from .config_check import unknown_options

    file_path = config_file_path(config_file)
    file_values = read_config_file(file_path) if file_path else {}
    return [*unknown_options(file_values, TelemetryConfig, f"the config file {file_path}"), *_unknown_env()]


def default_config_toml(db_path: str = DEFAULT_DB_PATH) -> str:
    """Return the commented TOML file that `telemetry init` writes."""
    return f"""\
# vibekit-telemetry configuration, read by the SDK and the `telemetry` CLI.
# Precedence: keyword arguments > environment variables (TELEMETRY_*) > this file > defaults.
[telemetry]
service_name = "my-agent"
service_version = "0.1.0"
# environment = "development"

# Where events are stored (TELEMETRY_DB_PATH overrides it).
db_path = "{db_path}"

# The background writer: flush when this many events wait, or after this many milliseconds.
stream_batch_size = 50
stream_flush_interval_ms = 1000

# When the in-memory queue is full: "block" (up to block_timeout_ms), "drop_newest" or "drop_oldest".
max_queue_size = 50000
backpressure = "block"
block_timeout_ms = 100

# Text fields longer than this are truncated and flagged in metadata._truncated.
max_field_length = 65536

# raise_on_error = true makes bad input raise instead of being logged and counted.
raise_on_error = false

# Retention and size limits for the SQLite store:
# [[telemetry.storage]]
# type = "sqlite"
# options = {{ path = "{db_path}", prune_days = 30, max_size_mb = 500 }}
"""
