"""What the HTTP exporters (webhook, central server, OTLP) share: one POST of a batch, its answer classified.

Every HTTP destination answers a batch in one of three ways, and the delivery worker needs to know which:
delivered (2xx: the cursor moves on), refused for good (PoisonBatchError: skipped and counted, retrying
cannot help) or not now (the caller's retry error: backed off and retried behind the breaker).
`post_batch` is that loop's one copy; each exporter only says which statuses are refusals.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .base import PoisonBatchError

# Answers that mean "not now" rather than "never", whatever the destination.
RETRY_STATUSES: Final = frozenset({408, 429})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: urllib would turn the POST into a GET and report the batch delivered."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Refuse every redirect, so the 3xx answer surfaces as an error (retried)."""
        return None


OPENER: Final = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx answer to a POST: its status, body and content type."""

    status: int
    body: bytes
    content_type: str


def is_refusal(status: int) -> bool:
    """The default rule: a 4xx answer refuses the batch for good, except 408 and 429 (try later)."""
    return 400 <= status < 500 and status not in RETRY_STATUSES


def error_detail(exc: urllib.error.HTTPError, limit: int = 300) -> str:
    """The start of an error answer's body, as ": text" for a message (empty when there is none)."""
    try:
        text = exc.read(limit).decode("utf-8", "replace").strip()
    except Exception:  # the body is a courtesy; the status says enough
        text = ""
    finally:
        exc.close()
    return f": {text}" if text else ""


def post_batch(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, *,
               retry_error: Callable[[str], Exception], refused: Callable[[int], bool] = is_refusal) -> Answer:
    """POST one encoded batch; return the 2xx answer, raise PoisonBatchError or `retry_error(message)`.

    A status for which `refused` is true raises PoisonBatchError; any other error status, a redirect,
    a timeout or a connection failure raises the caller's retry error (the worker retries the batch).
    """
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with OPENER.open(request, timeout=timeout_s) as response:
            return Answer(int(response.status), response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        message = f"{url} answered {exc.code}{error_detail(exc)}"
        if refused(exc.code):
            raise PoisonBatchError(message) from None
        raise retry_error(message) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise retry_error(f"{url}: {getattr(exc, 'reason', exc)}") from None
