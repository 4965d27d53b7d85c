"""Server settings: explicit options, then TELEMETRY_* environment variables, then the `api` config."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from ..config import (
    ENV_ALLOWED_ORIGINS,
    ENV_API_KEYS,
    ENV_AUTH_ENABLED,
    ENV_BEARER_TOKENS,
    ENV_MAX_BODY_BYTES,
    ENV_RATE_LIMIT,
    ENV_REDIS_URL,
    ApiConfig,
)
from ..errors import ValidationError

logger = logging.getLogger("vibekit_telemetry.server")

Scope = Literal["ingest", "read", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("ingest", "read", "admin")
ALL_SCOPES: Final = frozenset(SCOPES)
Strategy = Literal["fixed", "sliding"]
# Budgets per window: (read requests, ingest requests, window seconds). The default never gets in the
# way of a person on the dashboard or a fleet of agents sending batches; `strict` is seed 001's
# "100 requests per 15 minutes per IP" for servers exposed to the internet.
RATE_PRESETS: Final[dict[str, tuple[int, int, float]]] = {
    "default": (600, 6000, 60.0),
    "strict": (100, 100, 900.0),
}
INGEST_PATHS: Final = ("/api/events", "/v1/traces", "/api/pipeline")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Credential:
    """One accepted secret (an API key or a bearer token) and the scopes it grants."""

    secret: str = field(repr=False)
    scopes: frozenset[str]
    kind: Literal["api_key", "bearer"]


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Per-client budgets: read routes and ingest routes counted separately, per IP or per key."""

    enabled: bool = True
    preset: str = "default"
    read_limit: int = 600
    ingest_limit: int = 6000
    window_s: float = 60.0
    strategy: Strategy = "sliding"
    redis_url: str | None = None

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> RateLimitSettings:
        """Return the budgets of a preset (default, strict or off) with overrides applied."""
        if preset == "off":
            return cls(enabled=False, preset="off", **overrides)
        if preset not in RATE_PRESETS:
            raise ValidationError("rate_limit", "one of default, strict, off", preset)
        read, ingest, window = RATE_PRESETS[preset]
        values: dict[str, Any] = {"read_limit": read, "ingest_limit": ingest, "window_s": window}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(preset=preset, **values)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything the API server is told; build one with ServerSettings.resolve().

    Args:
        auth_enabled: require a credential on every non-public route.
        credentials: accepted API keys and bearer tokens with their scopes.
        allowed_origins: CORS origins (`*` for any, without credentials).
        cors_credentials: let browsers send cookies and auth headers cross-origin.
        public_health: serve /health and /health/ready without credentials.
        public_metrics: serve the Prometheus /metrics without credentials.
        public_docs: serve /docs, /redoc and /openapi.json without credentials.
        max_body_bytes: larger request bodies get 413.
        max_json_depth: more deeply nested JSON bodies get 400.
        rate_limit: the read and ingest budgets, and where their state lives.
        stream_buffer: messages buffered per live-stream connection before the oldest are dropped.
        heartbeat_s: seconds between heartbeats on idle live streams.
        max_stream_clients: live-stream connections allowed at once.
        hsts: send Strict-Transport-Security (None: only on requests that arrived over TLS).
        trust_proxy_headers: take the client IP and scheme from X-Forwarded-For / X-Forwarded-Proto.
    """

    auth_enabled: bool = False
    credentials: tuple[Credential, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    cors_credentials: bool = True
    public_health: bool = True
    public_metrics: bool = False
    public_docs: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 32
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    stream_buffer: int = 1000
    heartbeat_s: float = 15.0
    max_stream_clients: int = 1000
    hsts: bool | None = None
    trust_proxy_headers: bool = False

    @classmethod
    def resolve(cls, api: ApiConfig | None = None, *, env: Mapping[str, str] | None = None,
                **options: Any) -> ServerSettings:
        """Merge explicit options over TELEMETRY_* variables over the `api` config section."""
        return _resolve(api or ApiConfig(), os.environ if env is None else env, options)

    def with_options(self, **options: Any) -> ServerSettings:
        """Return a copy with some fields replaced."""
        return replace(self, **options)


def parse_credential(text: str, kind: Literal["api_key", "bearer"]) -> Credential:
    """Parse `SECRET` (every scope) or `SECRET:scope+scope` (ingest, read, admin)."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError("api_keys" if kind == "api_key" else "bearer_tokens", "a non-empty secret",
                              "(empty)")
    secret, _, suffix = text.strip().rpartition(":")
    if secret and suffix:
        scopes = frozenset(s.strip().lower() for s in suffix.replace(",", "+").split("+") if s.strip())
        if scopes and scopes <= ALL_SCOPES:
            return Credential(secret, scopes, kind)
    return Credential(text.strip(), ALL_SCOPES, kind)


def _split(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _flag(name: str, raw: str) -> bool | None:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    logger.warning("ignoring %s=%r: expected true or false", name, raw)
    return None


def _pop(options: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in options:
            value = options.pop(name)
            if value is not None:
                return value
    return None


def _resolve(api: ApiConfig, env: Mapping[str, str], options: dict[str, Any]) -> ServerSettings:
    options = dict(options)
    auth_cfg, cors_cfg, rl_cfg = api.auth, api.cors, api.rate_limit

    keys = _split(_pop(options, "api_keys", "api_key")) or _split(env.get(ENV_API_KEYS)) \
        or list(auth_cfg.api_keys)
    tokens = _split(_pop(options, "bearer_tokens", "bearer_token")) or _split(env.get(ENV_BEARER_TOKENS)) \
        or list(auth_cfg.bearer_tokens)
    credentials = tuple([parse_credential(k, "api_key") for k in keys]
                        + [parse_credential(t, "bearer") for t in tokens])

    enabled: bool | None = _pop(options, "auth", "auth_enabled")
    if enabled is None and env.get(ENV_AUTH_ENABLED) is not None:
        enabled = _flag(ENV_AUTH_ENABLED, env[ENV_AUTH_ENABLED])
    if enabled is None and "enabled" in auth_cfg.model_fields_set:
        enabled = auth_cfg.enabled
    if enabled is None:
        # Keys configured anywhere switch auth on: a secret nobody checks would be a surprise.
        enabled = bool(credentials)
    if enabled and not credentials:
        raise ValidationError("api.auth", "at least one API key or bearer token when auth is enabled "
                              f"(--api-key, {ENV_API_KEYS} or {ENV_BEARER_TOKENS})")

    origins = _split(_pop(options, "cors_origins", "allowed_origins", "cors_origin")) \
        or _split(env.get(ENV_ALLOWED_ORIGINS)) or list(cors_cfg.origins)

    rate = _pop(options, "rate_limit")
    redis_url = _pop(options, "redis_url") or env.get(ENV_REDIS_URL) or rl_cfg.redis_url
    strategy = _pop(options, "rate_limit_strategy") or rl_cfg.strategy
    if strategy not in ("fixed", "sliding"):
        raise ValidationError("rate_limit_strategy", "fixed or sliding", strategy)
    if isinstance(rate, RateLimitSettings):
        rate_limit = rate
    else:
        preset = rate if isinstance(rate, str) else env.get(ENV_RATE_LIMIT) or rl_cfg.preset
        if rate is False or (not rl_cfg.enabled and rate is None):
            preset = "off"
        rate_limit = RateLimitSettings.from_preset(
            str(preset).strip().lower(), read_limit=_pop(options, "read_limit") or rl_cfg.read_per_window,
            ingest_limit=_pop(options, "ingest_limit") or rl_cfg.ingest_per_window,
            window_s=_pop(options, "rate_window_s") or rl_cfg.window_s, strategy=strategy,
            redis_url=redis_url)

    max_body = _pop(options, "max_body_bytes")
    if max_body is None and env.get(ENV_MAX_BODY_BYTES):
        try:
            max_body = int(env[ENV_MAX_BODY_BYTES])
        except ValueError:
            logger.warning("ignoring %s=%r: expected a number of bytes", ENV_MAX_BODY_BYTES,
                           env[ENV_MAX_BODY_BYTES])
    values: dict[str, Any] = {
        "auth_enabled": bool(enabled),
        "credentials": credentials,
        "allowed_origins": tuple(origins),
        "cors_credentials": bool(_pop(options, "cors_credentials") if "cors_credentials" in options
                                 else cors_cfg.credentials),
        "public_health": auth_cfg.public_health,
        "public_metrics": auth_cfg.public_metrics,
        "max_body_bytes": int(max_body) if max_body is not None else api.max_body_bytes,
        "max_json_depth": api.max_json_depth,
        "rate_limit": rate_limit,
        "stream_buffer": api.stream_buffer,
        "heartbeat_s": api.heartbeat_s,
        "hsts": api.hsts,
        "trust_proxy_headers": api.trust_proxy_headers,
    }
    known = set(ServerSettings.__dataclass_fields__)
    for name, value in options.items():
        if name not in known:
            raise ValidationError(name, "a known server option (" + ", ".join(sorted(known)) + ")", value)
        values[name] = value
    if values["max_body_bytes"] < 1:
        raise ValidationError("max_body_bytes", "a positive number of bytes", values["max_body_bytes"])
    return ServerSettings(**values)
