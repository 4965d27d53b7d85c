"""Where and how the OTLP exporter sends: options first, then the standard OTEL_EXPORTER_OTLP_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

from ..errors import ValidationError

Protocol = Literal["http/protobuf", "http/json", "grpc"]
PROTOCOLS: Final = ("http/protobuf", "http/json", "grpc")
TRACES_PATH: Final = "/v1/traces"
DEFAULT_HTTP: Final = "http://localhost:4318"
DEFAULT_GRPC: Final = "http://localhost:4317"


@dataclass(frozen=True, slots=True)
class Target:
    """The resolved destination: full URL (http) or host:port URL (grpc), headers, protocol, gzip."""

    endpoint: str
    protocol: Protocol
    headers: dict[str, str]
    gzip: bool
    timeout_s: float


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def parse_headers(text: str) -> dict[str, str]:
    """Headers in the OTEL_EXPORTER_OTLP_HEADERS form: `key1=value1,key2=value2`, URL-encoded values."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


def traces_url(endpoint: str) -> str:
    """A base URL gets /v1/traces appended; one that already ends in it is used as is."""
    trimmed = endpoint.rstrip("/")
    return trimmed if trimmed.endswith(TRACES_PATH) else trimmed + TRACES_PATH


def resolve_target(options: Mapping[str, Any], field: str) -> Target:
    """The exporter's destination from its options, falling back to OTEL_EXPORTER_OTLP_* variables."""
    protocol = options.get("protocol") or _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") \
        or "http/protobuf"
    if protocol not in PROTOCOLS:
        raise ValidationError(f"{field}.protocol", "one of " + ", ".join(PROTOCOLS), protocol)
    endpoint = options.get("endpoint")
    # The signal-specific variable is the full URL, used as is (per the OTLP exporter spec); the option
    # and the generic variable are bases that get /v1/traces unless they already end in it.
    as_is = endpoint is None and _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") is not None
    if endpoint is None:
        endpoint = _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") \
            or (DEFAULT_GRPC if protocol == "grpc" else DEFAULT_HTTP)
    parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{field}.endpoint", "an http:// or https:// URL (e.g. http://localhost:4318)", endpoint)
    if protocol != "grpc" and not as_is:
        endpoint = traces_url(endpoint)
    headers = options.get("headers")
    if headers is None:
        text = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        headers = parse_headers(text) if text else {}
    if not isinstance(headers, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in headers.items()):
        raise ValidationError(f"{field}.headers", "a table of header names to string values", headers)
    compression = options.get("compression") or _env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                                                     "OTEL_EXPORTER_OTLP_COMPRESSION") or "gzip"
    if compression not in ("gzip", "none"):
        raise ValidationError(f"{field}.compression", "'gzip' or 'none'", compression)
    timeout = options.get("timeout_s", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValidationError(f"{field}.timeout_s", "a number of seconds > 0", timeout)
    chosen: Protocol = "grpc" if protocol == "grpc" else "http/json" if protocol == "http/json" else "http/protobuf"
    return Target(endpoint, chosen, dict(headers), compression == "gzip", float(timeout))
