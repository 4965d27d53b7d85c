"""The webhook exporter: POST committed events as JSON batches `{"events": [...]}`, with the stdlib only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..registry import check_options
from .base import DEFAULT_BATCH_SIZE
from .http import post_batch

OPTIONS: Final = frozenset({"url", "headers", "timeout_s", "batch_size", "name"})


class WebhookError(Exception):
    """The webhook could not take the batch now (5xx, 408, 429, timeout, connection refused): retried."""


class WebhookExporter:
    """POST batches to `url`; 2xx delivered, 4xx (but 408/429) refused for good, anything else retried.

    Each event is the dict the HTTP API returns (`GET /api/events`), with its event_id, so a
    receiver de-duplicates what a crash made it receive twice.
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                 batch_size: int = DEFAULT_BATCH_SIZE, name: str | None = None, field: str = "webhook") -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"{field}.url", "an http:// or https:// URL", url)
        if headers is None:
            headers = {}
        if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ValidationError(f"{field}.headers", "a table of header names to string values", headers)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValidationError(f"{field}.timeout_s", "a number of seconds > 0", timeout_s)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"{field}.batch_size", "an integer >= 1", batch_size)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValidationError(f"{field}.name", "a non-empty string", name)
        self.url, self.timeout_s, self.batch_size = url, float(timeout_s), batch_size
        self.headers = {"Content-Type": "application/json", "User-Agent": "vibekit-telemetry-webhook",
                        **headers}
        # The default name keys the cursor by where events go, without credentials or query string.
        port = f":{parts.port}" if parts.port else ""
        self.name = name or f"webhook:{parts.scheme}://{parts.hostname}{port}{parts.path}"

    def export(self, events: list[TelemetryEvent]) -> None:
        """POST one batch; return on 2xx, raise PoisonBatchError on a refusal, WebhookError otherwise."""
        # ASCII-escaped JSON: any receiver parses it, even text holding a lone surrogate.
        body = json.dumps({"events": [e.to_dict() for e in events]}, default=str).encode("ascii")
        post_batch(self.url, body, self.headers, self.timeout_s, retry_error=WebhookError)

    def shutdown(self) -> None:
        """Nothing to release: every request opens and closes its own connection."""



def build_webhook(options: dict[str, Any], field: str) -> WebhookExporter:
    """Registry factory for `{"type": "webhook", "options": {"url": ..., ...}}`."""
    check_options(options, OPTIONS, field, {"url": "an http:// or https:// URL (required)"})
    return WebhookExporter(options["url"], headers=options.get("headers"),
                           timeout_s=options.get("timeout_s", 10.0),
                           batch_size=options.get("batch_size", DEFAULT_BATCH_SIZE), name=options.get("name"),
                           field=field)
