"""Server settings: explicit options, then TELEMETRY_* environment variables, then the `api` config."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
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
# Keys shorter than this are refused: `telemetry keys generate` makes 43-character ones.
MIN_SECRET_LENGTH: Final = 16
HASH_PREFIX: Final = "sha256:"
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
# `trust_proxy_headers: true` without an allow-list trusts a proxy on this host only.
LOOPBACK_PROXIES: Final = ("127.0.0.1/32", "::1/128")
ENV_TRUSTED_PROXIES: Final = "TELEMETRY_TRUSTED_PROXIES"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Credential:
    """One accepted secret, kept only as its SHA-256 digest, and the scopes it grants."""

    digest: bytes = field(repr=False)
    scopes: frozenset[str]
    kind: Literal["api_key", "bearer"]

    @property
    def key_id(self) -> str:
        """The id logs and the audit log show: a short hash, never the key."""
        return "key_" + self.digest.hex()[:12]


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
        trusted_proxies: networks (CIDR) whose X-Forwarded-For / X-Forwarded-Proto are believed; empty:
            the socket peer is the client, whatever the headers say.
        header_timeout_s: a connection must finish its request headers within this time, else it is closed.
        body_timeout_s: a request must finish sending its body within this time, else 408.
        max_connections: connections held open at once; past it the oldest one still waiting for its
            headers is closed (and requests beyond it get 503).
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
    trusted_proxies: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 1000

    @property
    def trust_proxy_headers(self) -> bool:
        """Whether any proxy's forwarded headers are believed."""
        return bool(self.trusted_proxies)

    @classmethod
    def resolve(cls, api: ApiConfig | None = None, *, env: Mapping[str, str] | None = None,
                **options: Any) -> ServerSettings:
        """Merge explicit options over TELEMETRY_* variables over the `api` config section."""
        return _resolve(api or ApiConfig(), os.environ if env is None else env, options)

    def with_options(self, **options: Any) -> ServerSettings:
        """Return a copy with some fields replaced."""
        return replace(self, **options)


def _scopes(text: str, name: str) -> frozenset[str]:
    """Parse `ingest+read` (or `ingest,read`); an unknown or empty scope is an error naming it."""
    scopes = set()
    for part in text.replace(",", "+").split("+"):
        scope = part.strip().lower()
        if scope not in ALL_SCOPES:
            raise ValidationError(name, "scopes from " + ", ".join(SCOPES) + " joined by +", part.strip(),
                                  message=f"{name}: unknown scope {part.strip()!r} (known: "
                                  f"{', '.join(SCOPES)}; join several with +, e.g. ingest+read)")
        scopes.add(scope)
    return frozenset(scopes)


def parse_credential(text: str, kind: Literal["api_key", "bearer"]) -> Credential:
    """Parse `SECRET[:scope+scope]` or `sha256:<hex>[:scope+scope]`; weak or ambiguous keys are refused.

    Without scopes a key has every scope (ingest, read, admin). The error never repeats the secret.
    """
    name = "api_keys" if kind == "api_key" else "bearer_tokens"
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(name, "a non-empty secret", "(empty)")
    text = text.strip()
    if text[:len(HASH_PREFIX)].lower() == HASH_PREFIX:
        hexdigest, sep, suffix = text[len(HASH_PREFIX):].partition(":")
        if not _HEX64.fullmatch(hexdigest.lower()):
            raise ValidationError(name, "sha256: followed by 64 hex digits (telemetry keys generate prints "
                                  "one)", message=f"{name}: a hashed key must be sha256: followed by 64 hex "
                                  "digits, then optionally :scope+scope")
        scopes = _scopes(suffix, name) if sep else ALL_SCOPES
        return Credential(bytes.fromhex(hexdigest), scopes, kind)
    secret, sep, suffix = text.rpartition(":")
    if not sep:
        secret, scopes = text, ALL_SCOPES
    else:
        # Whatever follows the last colon must be scopes: `k:bogus` is an error, not a key named so.
        scopes = _scopes(suffix, name)
    if secret.lower() in ALL_SCOPES:
        raise ValidationError(name, "a secret", message=f"{name}: a key may not be the scope name "
                              f"{secret!r} (a comma inside KEY:SCOPES? join scopes with +: key:ingest+read)")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValidationError(name, "a secret", message=f"{name}: a key of {len(secret)} characters is "
                              f"too short: use at least {MIN_SECRET_LENGTH} (`telemetry keys generate` "
                              "makes a strong one)")
    return Credential(hashlib.sha256(secret.encode("utf-8")).digest(), scopes, kind)


def split_credentials(value: str | Iterable[str] | None) -> list[str]:
    """Split a comma-separated key list; a piece that is only scope names continues the key before it.

    So `TELEMETRY_API_KEYS="k...:ingest,read"` means one key with ingest and read, never a key `read`.
    """
    out: list[str] = []
    for piece in _split(value):
        if out and ":" in out[-1] and piece.lower() in ALL_SCOPES:
            out[-1] += "+" + piece
        else:
            out.append(piece)
    return out


def parse_networks(values: Iterable[str], name: str = "trusted_proxies") -> tuple[str, ...]:
    """Validate proxy addresses or CIDR networks; return them normalised (10.0.0.0/8, ::1/128)."""
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValidationError(name, "an IP address or CIDR network such as 10.0.0.0/8", value) from None
    return tuple(networks)


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

    keys = split_credentials(_pop(options, "api_keys", "api_key")) \
        or split_credentials(env.get(ENV_API_KEYS)) or split_credentials(auth_cfg.api_keys)
    tokens = split_credentials(_pop(options, "bearer_tokens", "bearer_token")) \
        or split_credentials(env.get(ENV_BEARER_TOKENS)) or split_credentials(auth_cfg.bearer_tokens)
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
        "trusted_proxies": _trusted_proxies(api, env, options),
    }
    known = set(ServerSettings.__dataclass_fields__)
    for name, value in options.items():
        if name not in known:
            raise ValidationError(name, "a known server option (" + ", ".join(sorted(known)) + ")", value)
        values[name] = value
    values["trusted_proxies"] = parse_networks(values["trusted_proxies"])
    for name in ("header_timeout_s", "body_timeout_s", "max_connections"):
        if not isinstance(values.get(name, 1), int | float) or values.get(name, 1) <= 0:
            raise ValidationError(name, "a positive number", values[name])
    if values["max_body_bytes"] < 1:
        raise ValidationError("max_body_bytes", "a positive number of bytes", values["max_body_bytes"])
    return ServerSettings(**values)


def _trusted_proxies(api: ApiConfig, env: Mapping[str, str], options: dict[str, Any]) -> list[str]:
    """Pick the proxies whose forwarded headers are believed: option, env, config list, or loopback."""
    trust = _pop(options, "trust_proxy_headers")
    explicit = _split(_pop(options, "trusted_proxies", "trust_proxy")) or _split(env.get(ENV_TRUSTED_PROXIES)) \
        or _split(api.trusted_proxies)
    if trust is False:
        return []
    if explicit:
        return explicit
    if trust or api.trust_proxy_headers:
        return list(LOOPBACK_PROXIES)
    return []
