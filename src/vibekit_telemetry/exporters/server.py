"""The server exporter: an agent host forwards what its local store committed to a central `telemetry api`.

Each batch goes to the central server's `POST /api/events` and counts as delivered only when the
answer says `committed: true` (the server answers after its own durable commit), so the follower's
cursor never passes an event the central store does not hold. Re-sent events (a crash between the
answer and the cursor save) are skipped there by `event_id`: nothing is lost, nothing is stored twice.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..registry import check_options
from .base import DEFAULT_BATCH_SIZE, PoisonBatchError
from .http import post_batch

OPTIONS: Final = frozenset({"url", "api_key", "timeout_s", "batch_size", "name"})
INGEST_PATH: Final = "/api/events"
# A batch the server refuses as invalid (400/422) is retried one event at a time, so one bad event
# does not cost its 499 neighbours. Auth failures (401/403) and 404 are NOT refusals of the batch:
# a wrong key or URL is fixed by the operator, and the backlog must still be there when it is.
REFUSED_STATUSES: Final = frozenset({400, 422})


class ServerUnavailable(Exception):
    """The central server did not durably take the batch (down, 5xx, 401, 202 queued only): retried."""


class ServerExporter:
    """Forward batches to a central server's POST /api/events with durable acknowledgement.

    Args:
        url: the central server's base URL (`http://telemetry.internal:8000`); a URL that already
            ends in /api/events is used as is.
        api_key: sent as `X-API-Key` (a key with the `ingest` scope); None when auth is off.
        timeout_s: per request; batch_size: events per POST; name: keys the cursor
            (default `server:` + the URL without credentials).
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 30.0,
                 batch_size: int = DEFAULT_BATCH_SIZE, name: str | None = None, field: str = "server") -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"{field}.url", "the central server's http:// or https:// URL", url)
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValidationError(f"{field}.api_key", "a non-empty API key", "<hidden>")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValidationError(f"{field}.timeout_s", "a number of seconds > 0", timeout_s)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise ValidationError(f"{field}.batch_size", "an integer from 1 to 10000", batch_size)
        if name is not None and (not isinstance(name, str) or not name):
            raise ValidationError(f"{field}.name", "a non-empty string", name)
        path = parts.path.rstrip("/")
        if not path.endswith(INGEST_PATH):
            path += INGEST_PATH
        port = f":{parts.port}" if parts.port else ""
        # Credentials never go in the cursor name (it is shown by `telemetry forward status`).
        self.url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.name = name or f"server:{parts.scheme}://{parts.hostname}{port}{path}"
        self.timeout_s, self.batch_size = float(timeout_s), batch_size
        self.headers = {"Content-Type": "application/json", "User-Agent": "vibekit-telemetry-forward"}
        if api_key:
            self.headers["X-API-Key"] = api_key.strip()
        self.refused = 0  # events the server refused as invalid (each logged by the worker)

    def export(self, events: list[TelemetryEvent]) -> None:
        """Post the batch; return once the server committed it; raise ServerUnavailable to retry later."""
        try:
            self._post(events)
        except PoisonBatchError:
            if len(events) == 1:
                raise
            # Send the events one by one: only the ones the server refuses are skipped.
            bad: list[str] = []
            for event in events:
                try:
                    self._post([event])
                except PoisonBatchError as exc:
                    bad.append(f"{event.event_id}: {exc}")
            if bad:
                self.refused += len(bad)
                raise PoisonBatchError(f"{len(bad)} of {len(events)} events refused; first {bad[0]}") from None

    def _post(self, events: list[TelemetryEvent]) -> None:
        # ASCII-escaped JSON: the server parses it even when text holds a lone surrogate.
        body = json.dumps({"events": [e.to_dict() for e in events]}, default=str).encode("ascii")
        reply = post_batch(self.url, body, self.headers, self.timeout_s, retry_error=ServerUnavailable,
                           refused=REFUSED_STATUSES.__contains__)
        status, answer = reply.status, _json(reply.body)
        # Only a durable commit moves the cursor: a 202 (queued) could still be lost by the server.
        if status != 200 or answer.get("committed") is not True:
            raise ServerUnavailable(f"{self.url} answered {status} without a durable commit")

    def shutdown(self) -> None:
        """Nothing to release: every request opens and closes its own connection."""


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}



def build_server(options: dict[str, Any], field: str) -> ServerExporter:
    """Registry factory for `{"type": "server", "options": {"url": ..., "api_key": ...}}`."""
    check_options(options, OPTIONS, field, {"url": "the central server's URL (required)"})
    return ServerExporter(options["url"], api_key=options.get("api_key"), timeout_s=options.get("timeout_s", 30.0),
                          batch_size=options.get("batch_size", DEFAULT_BATCH_SIZE), name=options.get("name"),
                          field=field)
