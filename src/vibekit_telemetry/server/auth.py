"""API keys and bearer tokens: constant-time checks, scopes, and key ids that never reveal the key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Request, Security, WebSocket
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .settings import ALL_SCOPES, Credential, ServerSettings

API_KEY_HEADER: Final = "x-api-key"
# Browsers cannot set headers on a WebSocket or an EventSource: live streams also take ?api_key=.
STREAM_KEY_PARAMS: Final = ("api_key", "token")
CHALLENGE: Final = 'Bearer realm="telemetry", ApiKey header="X-API-Key"'

# Declared so the OpenAPI document (and its interactive docs) know both schemes.
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="BearerToken")


def key_id(secret: str) -> str:
    """Return the id recorded for a secret in logs and the audit log: a short hash, never the key."""
    return "key_" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a key id and its scopes (or `anonymous` when auth is off)."""

    key_id: str
    scopes: frozenset[str]
    kind: str

    def allows(self, scope: str) -> bool:
        """Return whether this principal may use routes of `scope` (admin may use all)."""
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS: Final = Principal("anonymous", ALL_SCOPES, "none")


class Authenticator:
    """Check presented secrets against the configured ones in constant time."""

    def __init__(self, settings: ServerSettings) -> None:
        self.enabled = settings.auth_enabled
        # Compare SHA-256 digests: equal lengths, so compare_digest leaks neither content nor length;
        # the settings hold digests only, so a `sha256:` key in the config works the same way.
        self._entries = [(c.digest, c, c.key_id) for c in settings.credentials]

    def identify(self, secret: str | None, kind: str) -> Principal | None:
        """Return the principal a secret belongs to, or None; every entry is compared, no early exit."""
        if not secret:
            return None
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
        found: tuple[Credential, str] | None = None
        for expected, credential, kid in self._entries:
            if hmac.compare_digest(digest, expected) and credential.kind == kind and found is None:
                found = (credential, kid)
        if found is None:
            return None
        return Principal(found[1], found[0].scopes, kind)

    def from_headers(self, headers: Mapping[str, str], query: Mapping[str, str] | None = None) \
            -> tuple[Principal | None, bool]:
        """Return (principal, presented): presented is True when any credential came with the request."""
        api_key = headers.get(API_KEY_HEADER)
        authorization = headers.get("authorization")
        token: str | None = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if query is not None and not api_key and not token:
            for name in STREAM_KEY_PARAMS:
                if query.get(name):
                    api_key = query[name]
                    break
        presented = bool(api_key or authorization)
        if api_key:
            principal = self.identify(api_key, "api_key") or self.identify(api_key, "bearer")
            if principal is not None:
                return principal, True
        if token:
            principal = self.identify(token, "bearer") or self.identify(token, "api_key")
            if principal is not None:
                return principal, True
        return None, presented

    def check(self, headers: Mapping[str, str], scope: str, query: Mapping[str, str] | None = None) \
            -> Principal:
        """Return the principal allowed to use `scope`; raise 401 or 403 ApiError otherwise."""
        if not self.enabled:
            return ANONYMOUS
        principal, presented = self.from_headers(headers, query)
        if principal is None:
            message = ("invalid API key or bearer token" if presented else
                       "authentication required: send X-API-Key or Authorization: Bearer")
            raise ApiError(401, "Unauthorized", message, headers={"WWW-Authenticate": CHALLENGE})
        if not principal.allows(scope):
            raise ApiError(403, "Forbidden", f"this key ({principal.key_id}) lacks the {scope!r} scope "
                           f"(it has: {', '.join(sorted(principal.scopes))})")
        return principal


# What a route that checks its key itself (authorize()) declares, as require() would in the OpenAPI document.
SECURITY_REQUIREMENTS: Final[list[dict[str, list[str]]]] = [{"ApiKey": []}, {"BearerToken": []}]


def authorize(request: Request, scope: str, *, public: Callable[[ServerSettings], bool] | None = None) \
        -> Principal:
    """Return the request's principal allowed to use `scope` (401/403 otherwise); kept on request.state."""
    settings: ServerSettings = request.app.state.settings
    if public is not None and public(settings):
        return ANONYMOUS
    auth: Authenticator = request.app.state.auth
    principal = auth.check(request.headers, scope)
    request.state.principal = principal
    return principal


def require(scope: str, *, public: Callable[[ServerSettings], bool] | None = None) \
        -> Callable[..., Awaitable[Principal]]:
    """Return a FastAPI dependency that admits principals with `scope` (admin admits all)."""

    # async although it never awaits: FastAPI runs a plain function in its thread pool, a hop that costs
    # more than these few hash comparisons (and, per request, competes with the writer for the GIL).
    async def dependency(request: Request, _key: Annotated[str | None, Security(api_key_scheme)] = None,
                   _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
                   ) -> Principal:
        return authorize(request, scope, public=public)

    dependency.__name__ = f"require_{scope}"
    return dependency


def check_stream(websocket_or_request: WebSocket | Request) -> Principal:
    """Admit a live-stream connection with the read scope (header or ?api_key=)."""
    auth: Authenticator = websocket_or_request.app.state.auth
    return auth.check(websocket_or_request.headers, "read", websocket_or_request.query_params)
