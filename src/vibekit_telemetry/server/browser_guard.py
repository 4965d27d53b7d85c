"""Cross-site write guard: mutating requests need a JSON body type, and an Origin, when sent, must be allowed.

A web page open in the developer's browser may send a "simple" request (POST with text/plain, form or
no content type) to a server on localhost without any CORS preflight, and the browser delivers it even
though the page cannot read the answer. With auth off (the local default) that would let any site write
into, or delete from, the developer's store. So, before auth and routing:

- a POST/PUT/PATCH with a body must declare a JSON type (application/json, NDJSON, `+json`) or a type
  its route documents in its OpenAPI request body (OTLP's protobuf, usage imports: see
  `declared_body_types`): browsers cannot send those cross-site without a preflight, and the
  preflight is refused for origins that are not allowed;
- a mutating request or a WebSocket handshake carrying an `Origin` header must come from an allowed
  origin (the CORS allow-list, or the server's own loopback origin), else 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .body import NDJSON_TYPES, media_type
from .errors import error_body, json_response

MUTATING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
JSON_BODY_TYPES: Final = frozenset({"application/json", *NDJSON_TYPES})
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return _header(scope, b"transfer-encoding") is not None


# Types a browser may send cross-site without a preflight: never accepted, even if a route lists one.
SIMPLE_TYPES: Final = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""})


def declared_body_types(routes: Iterable[BaseRoute]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Return (path pattern, media types) for routes whose OpenAPI request body lists its own types."""
    found = []
    for route in _flatten(routes):
        extra: Any = getattr(route, "openapi_extra", None) or {}
        content = extra.get("requestBody", {}).get("content", {}) if isinstance(extra, dict) else {}
        types = frozenset(str(t).lower() for t in content) - SIMPLE_TYPES
        pattern = getattr(route, "path_regex", None)
        if types and pattern is not None:
            found.append((pattern, types | JSON_BODY_TYPES))
    return found


def _flatten(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[Any]:
    """Every route, also those of included routers (FastAPI >= 0.16x keeps them nested), with their prefix."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _flatten(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))
        elif prefix and getattr(route, "path", None):
            yield _Prefixed(route, prefix)
        else:
            yield route


class _Prefixed:
    """A nested route seen with its router's prefix: only what declared_body_types reads."""

    def __init__(self, route: Any, prefix: str) -> None:
        self.openapi_extra = getattr(route, "openapi_extra", None)
        self.path_regex = re.compile("^" + re.escape(prefix) + str(route.path_regex.pattern).lstrip("^"))


class BrowserGuardMiddleware:
    """Refuse cross-site writes: 415 for non-JSON bodies, 403 for Origins not allowed."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = (),
                 route_types: Iterable[tuple[re.Pattern[str], frozenset[str]]] = ()) -> None:
        self.app = app
        origins = {o.strip().rstrip("/").lower() for o in allowed_origins}
        self.any_origin = "*" in origins
        self.origins = frozenset(origins - {"*"})
        # Routes with their own body types (e.g. OTLP's application/x-protobuf): declared_body_types().
        self.route_types = list(route_types)

    def _allowed_types(self, path: str) -> frozenset[str]:
        for pattern, types in self.route_types:
            if pattern.match(path):
                return types
        return JSON_BODY_TYPES

    def origin_allowed(self, origin: str, scope: Scope) -> bool:
        """Return whether a request from `origin` may write: listed, or this server's own loopback origin."""
        origin = origin.strip().rstrip("/").lower()
        if self.any_origin or origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        server = scope.get("server")
        # Only a literal loopback host on the port this server listens on: a DNS-rebinding page has its
        # own host name in Origin, so it never matches.
        return (parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS
                and server is not None and port == server[1])

    def body_type_allowed(self, scope: Scope) -> bool:
        """Return whether the declared Content-Type is one a browser cannot send cross-site unasked."""
        kind = media_type(_header(scope, b"content-type"))
        return kind in self._allowed_types(scope.get("path", "")) or kind.endswith("+json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the Origin and Content-Type of writes and WebSocket handshakes, then pass the request on."""
        kind = scope["type"]
        method = scope.get("method", "GET")
        if kind == "websocket" or (kind == "http" and method in MUTATING):
            origin = _header(scope, b"origin")
            if origin is not None and not self.origin_allowed(origin, scope):
                if kind == "websocket":
                    # Closing before accepting makes the server answer the handshake with 403.
                    await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
                    return
                body = error_body("Forbidden", f"requests from origin {origin[:100]!r} may not change data "
                                  "on this server; add it to the CORS origins (--cors-origin) to allow it",
                                  [{"field": "Origin", "message": "an allowed origin"}])
                await json_response(body, 403)(scope, receive, send)
                return
        if kind == "http" and method in WITH_BODY and _has_body(scope) and not self.body_type_allowed(scope):
            declared = media_type(_header(scope, b"content-type")) or "(none)"
            expected = ", ".join(sorted(self._allowed_types(scope.get("path", ""))))
            body = error_body("Unsupported Media Type", f"unsupported content type {declared!r}: send "
                              "Content-Type: application/json (or application/x-ndjson)",
                              [{"field": "Content-Type", "message": f"one of {expected}"}])
            await json_response(body, 415)(scope, receive, send)
            return
        await self.app(scope, receive, send)
