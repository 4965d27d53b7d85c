"""The config section models (seed 001/003 option groups); loading and precedence live in config.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class _Section(BaseModel):
    """Base of every config section: snake_case or camelCase keys, unknown keys kept for later issues."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class StorageConfig(_Section):
    """One storage provider: `{"type": "sqlite", "enabled": True, "options": {"path": "…"}}`."""

    # A store or exporter type of the registry: sqlite, postgres(ql), memory, custom, webhook, or a plugin's.
    type: str
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from .registry import check_type

        return check_type(value)


class LocalStoreConfig(_Section):
    """Seed 003's `localStore` block, mapped onto a SQLite storage entry."""

    is_enabled: bool = True
    path: str | None = None
    stream_batch_size: int | None = None
    stream_flush_interval_ms: int | None = None
    prune_days: int | None = None
    max_size_mb: float | None = Field(None, alias="maxSizeMB")
    enable_indexes: bool = True
    enable_wal: bool = Field(True, alias="enableWAL")


class StreamingConfig(_Section):
    """Live streaming (filled by the API server issue)."""

    enabled: bool = False
    provider: Literal["websocket", "sse", "grpc"] = "websocket"


class PiiDetectorConfig(_Section):
    """A custom PII detector: `{"name": "ticket", "pattern": "TICKET-\\d+", "replacement": "[TICKET]"}`."""

    name: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    replacement: str | None = None


class PiiConfig(_Section):
    """PII and secret redaction on the chain's `redact` step (docs/privacy.md).

    enabled=None means "the entry point decides": off for the SDK, on for the API server's ingest.
    """

    enabled: bool | None = None
    patterns: list[str] = Field(default_factory=list)  # built-in detector names or families; empty = all
    custom_detectors: list[PiiDetectorConfig] = Field(default_factory=list)
    mode: Literal["replace", "hash"] = "replace"
    hash_salt: str | None = None  # the key of the stable hash (mode="hash"); keep it secret
    replacements: dict[str, str] = Field(default_factory=dict)  # detector name -> replacement tag
    hold_stream_tails: bool = True


class RedactionConfig(_Section):
    """Field-name rules: metadata/context keys (and keys ending so) replaced whatever their value."""

    enabled: bool = True
    fields: list[str] = Field(default_factory=list)  # added to privacy.redactor.DEFAULT_FIELDS


class EncryptionConfig(_Section):
    """AES-256-GCM of label, stream data and metadata at rest (extra `crypto`; key from TELEMETRY_ENCRYPTION_KEY)."""

    enabled: bool = False
    key: str | None = None  # 64 hex chars; default TELEMETRY_ENCRYPTION_KEY
    passphrase: str | None = None  # or a passphrase, stretched with scrypt and the store's salt
    old_keys: list[str] = Field(default_factory=list)  # keys still accepted for reading (rotation)


class RetentionConfig(_Section):
    """Compliance retention: drop user-identifying fields after N days, delete events after M days."""

    anonymize_after: float | None = Field(default=None, gt=0)
    delete_after: float | None = Field(default=None, gt=0, validation_alias=AliasChoices(
        "delete_after", "deleteAfter", "retention_days", "retentionDays"))
    # Context / metadata keys that identify a user (removed by anonymize_after and `telemetry user delete`).
    user_fields: list[str] = Field(default_factory=lambda: ["user", "user_id", "userId", "email", "username", "ip",
                                                            "ip_address"])


class DataMinimizationConfig(_Section):
    """Keep less: metadata/context keys dropped (exclude_fields) or the only ones kept (include_only)."""

    enabled: bool = True
    exclude_fields: list[str] = Field(default_factory=list)
    include_only: list[str] | None = None


class AuditConfig(_Section):
    """The audit trail (hash-chained entries in the store)."""

    enabled: bool = True


class SecurityConfig(_Section):
    """PII redaction, encryption at rest, retention, data minimisation and the audit trail (docs/privacy.md)."""

    pii: PiiConfig = Field(default_factory=PiiConfig)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    data_minimization: DataMinimizationConfig = Field(default_factory=DataMinimizationConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)


class RetryConfig(_Section):
    """Seed 001 `reliability.retry`: how a failing primary store is retried before its batch is spooled."""

    enabled: bool = True
    max_attempts: int = Field(default=5, ge=0, le=1000)
    backoff: Literal["exponential", "linear"] = "exponential"
    base_ms: float = Field(default=100.0, gt=0)
    max_ms: float = Field(default=5_000.0, gt=0)
    jitter: bool = True


class CircuitBreakerConfig(_Section):
    """Seed 001 `reliability.circuitBreaker`: open after `threshold` failures, probe after `timeout` ms."""

    enabled: bool = True
    threshold: int = Field(default=5, ge=1)
    timeout: float = Field(default=30_000.0, gt=0)
    # Successful probes in a row (one at a time) that close a half-open breaker; a failed one reopens it.
    half_open_probes: int = Field(default=1, ge=1, le=100)


class TrackRateLimitConfig(_Section):
    """Seed 001 `reliability.rateLimit`: a token bucket per category on tracked events."""

    enabled: bool = False
    max_requests: int = Field(default=1000, ge=1)
    window_ms: float = Field(default=1000.0, gt=0)


class ReliabilityConfig(_Section):
    """Retries, circuit breaker, spool for a remote primary, rate limit, memory and disk limits."""

    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    rate_limit: TrackRateLimitConfig = Field(default_factory=TrackRateLimitConfig)
    # Seed 001 Data Loss Prevention: batches a remote primary cannot take go to a local SQLite spool.
    buffer_on_error: bool = True
    buffer_size: int = Field(default=1_000_000, ge=1)
    persist_buffer: bool = True
    spool_path: str | None = None
    # Seed 001 `memoryLimit`, bytes: the most the writer queue may hold (estimated from the measured size
    # of events); past it events spill to the spool, or are dropped by `backpressure` (counted as
    # memory_limit). Shared with the sampler's held events and bus-fed exporters' queues when they exist
    # (a quarter each), and the sampler's sessions seen (2 %): limits.MemoryShares. Resident memory over
    # it emits `memory:high` too.
    memory_limit: int | None = Field(default=None, ge=1)
    # Free disk (MB) next to a SQLite store below which commits are held (retried) rather than run into
    # SQLITE_FULL; checked before each commit, statvfs cached for disk_check_interval_ms.
    min_free_disk_mb: float = Field(default=50.0, ge=0)
    disk_check_interval_ms: float = Field(default=1000.0, ge=0)
    # Seed 002's auto-tuned batch size: shrink batches when a commit takes longer than this ...
    adaptive_batching: bool = True
    target_commit_ms: float = Field(default=1000.0, gt=0)
    # ... but once the queue is fuller than this fraction of max_queue_size, batches go to the largest.
    backpressure_threshold: float = Field(default=0.8, gt=0, le=1)
    check_interval_s: float = Field(default=5.0, gt=0)


class AnalyticsConfig(_Section):
    """Live metrics, anomalies and alerts (docs/analytics.md): evaluation on the scheduler when enabled."""

    enabled: bool = False
    interval_s: float = Field(default=30.0, gt=0)
    sensitivity: str = Field(default="medium", pattern="^(low|medium|high)$")
    # The series the evaluation job watches (seed 001 spells it anomaly.metrics).
    watch: list[str] = Field(default=["throughput", "error_rate", "response_time"])
    history_hours: float = Field(default=50.0, gt=0, le=24 * 90)
    cooldown_s: float = Field(default=300.0, ge=0)
    ttfc_slow_ms: float = Field(default=5000.0, gt=0)
    # Model name (prefix) -> [input, output] USD per million tokens, over the shipped table.
    prices: dict[str, Any] = Field(default_factory=dict)
    webhooks: list[Any] = Field(default_factory=list)
    thresholds: list[dict[str, Any]] = Field(default_factory=list)

    # Seed 001's nested blocks, kept as given and mapped onto the flat fields above by _seed_blocks.
    metrics: dict[str, Any] = Field(default_factory=dict)   # {enabled, interval (ms), persistence}
    anomaly: dict[str, Any] = Field(default_factory=dict)   # {enabled, sensitivity, metrics}
    alerts: dict[str, Any] = Field(default_factory=dict)    # {enabled, channels: [{type: webhook, url}]}

    @model_validator(mode="after")
    def _seed_blocks(self) -> AnalyticsConfig:
        if isinstance(self.metrics.get("interval"), int | float) and self.metrics["interval"] > 0:
            self.interval_s = self.metrics["interval"] / 1000
        if self.anomaly.get("sensitivity") in ("low", "medium", "high"):
            self.sensitivity = self.anomaly["sensitivity"]
        if isinstance(self.anomaly.get("metrics"), list):
            self.watch = [str(m) for m in self.anomaly["metrics"]]
        for channel in self.alerts.get("channels") or ():
            if isinstance(channel, dict) and channel.get("type") == "webhook" and channel.get("url"):
                self.webhooks.append({"url": channel["url"]})
        return self

    @field_validator("thresholds")
    @classmethod
    def _valid_rules(cls, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Checked here, with the config, so a bad rule fails at Telemetry(...) before any thread starts.
        from .analytics.alerts import check_rule_options  # only when rules are configured

        for index, rule in enumerate(rules):
            check_rule_options(rule, f"analytics.thresholds[{index}]")
        return rules


class ApiAuthConfig(_Section):
    """API authentication: keys (`X-API-Key`) and bearer tokens, each `SECRET` or `SECRET:scope+scope`."""

    enabled: bool = False
    api_keys: list[str] = Field(default_factory=list)
    bearer_tokens: list[str] = Field(default_factory=list)
    public_health: bool = True
    public_metrics: bool = False


class ApiCorsConfig(_Section):
    """CORS: the origins allowed to call the API from a browser (seed 001 `api.cors`)."""

    origins: list[str] = Field(default_factory=list)
    credentials: bool = True


class ApiRateLimitConfig(_Section):
    """Rate limits per client IP or API key, with separate read and ingest budgets."""

    enabled: bool = True
    preset: Literal["default", "strict", "off"] = "default"
    read_per_window: int | None = Field(default=None, ge=1)
    ingest_per_window: int | None = Field(default=None, ge=1)
    window_s: float | None = Field(default=None, gt=0)
    strategy: Literal["fixed", "sliding"] = "sliding"
    redis_url: str | None = None


class ApiConfig(_Section):
    """The API server: address, auth, CORS, rate limits, body limit and live streams."""

    enabled: bool = False
    port: int = 3000
    host: str = "127.0.0.1"
    auth: ApiAuthConfig = Field(default_factory=ApiAuthConfig)
    cors: ApiCorsConfig = Field(default_factory=ApiCorsConfig)
    rate_limit: ApiRateLimitConfig = Field(default_factory=ApiRateLimitConfig)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=1000)
    stream_buffer: int = Field(default=1000, ge=1)
    heartbeat_s: float = Field(default=15.0, gt=0)
    hsts: bool | None = None
    trust_proxy_headers: bool = False
    # Proxies (addresses or CIDR) whose X-Forwarded-* headers are believed; trust_proxy_headers alone
    # trusts a proxy on this host (loopback) only.
    trusted_proxies: list[str] = Field(default_factory=list)
    # `telemetry api` also serves the gRPC TelemetryStream service on this port (issue 15; 0: any free
    # port; None: off). Same host, Telemetry and keys as the HTTP API. Env TELEMETRY_GRPC_PORT.
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    # PEM files: both gRPC servers of `telemetry api` (TelemetryStream, OTLP/gRPC) serve TLS with this
    # certificate chain and private key; give both or neither. Env TELEMETRY_GRPC_TLS_CERT / _KEY.
    grpc_tls_cert: str | None = None
    grpc_tls_key: str | None = None
    # PEM files: the HTTP API (REST, WebSocket, SSE, dashboard, OTLP/HTTP) serves HTTPS only with this
    # certificate chain and private key; give both or neither. Env TELEMETRY_TLS_CERT / _KEY.
    tls_cert: str | None = None
    tls_key: str | None = None


class DashboardConfig(_Section):
    """The web dashboard (filled by the dashboard issue)."""

    enabled: bool = False


class ExportSettings(_Section):
    """Exports (issue 11): where API-requested exports may be written, and scheduled exports."""

    # Exports requested through the API are confined to this directory (no `..`, no symlinks out).
    export_dir: str = ".vibekit/exports"
    # Each: {"name", "format", "every": "24h", "output_dir", "keep": 7, "compression", "filter": {...}}.
    schedules: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("schedules")
    @classmethod
    def _valid_schedules(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from .export.schedule import make_schedule

        for index, entry in enumerate(value):
            if not isinstance(entry, dict) or "name" not in entry:
                raise ValueError(f"schedules[{index}]: expected a dict with name, format, every, output_dir")
            unknown = set(entry) - {"name", "format", "every", "output_dir", "keep", "compression", "filter"}
            if unknown:
                raise ValueError(f"schedules[{index}].{sorted(unknown)[0]}: not a schedule option (known: name, "
                                 "format, every, output_dir, keep, compression, filter)")
            options = dict(entry)
            make_schedule(options.pop("name"), field_prefix=f"exports.schedules[{index}].", **options)
        return value
