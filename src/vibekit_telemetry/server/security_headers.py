"""Security headers on every response (CSP, nosniff, frame denial, referrer policy, HSTS behind TLS)."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import ServerSettings

# The API serves JSON only: nothing may load, frame or run from it.
API_CSP: Final = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive docs (Swagger UI, ReDoc) load their script and styles from a CDN and run inline set-up.
DOCS_CSP: Final = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
                   "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
                   "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; "
                   "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'")
DOCS_PATHS: Final = ("/docs", "/redoc")
HSTS: Final = b"max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware:
    """Add security headers to every HTTP response, errors included."""

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.hsts = settings.hsts
        base = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin"),
                (b"cross-origin-resource-policy", b"same-origin"),
                (b"permissions-policy", b"camera=(), microphone=(), geolocation=()")]
        self._api = [*base, (b"content-security-policy", API_CSP.encode())]
        self._docs = [*base, (b"content-security-policy", DOCS_CSP.encode())]

    def _tls(self, scope: Scope) -> bool:
        if self.hsts is not None:
            return self.hsts
        # The proxy middleware sets the scheme from X-Forwarded-Proto for trusted proxies only.
        return bool(scope.get("scheme") == "https")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap `send` so the response start carries the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = list(self._docs if path.startswith(DOCS_PATHS) else self._api)
        if self._tls(scope):
            extra.append((b"strict-transport-security", HSTS))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                headers = list(message.get("headers", ()))
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
