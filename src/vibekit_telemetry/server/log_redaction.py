"""Keep credentials out of the server's logs: query-string secrets are replaced before a record is written.

Browsers' EventSource and WebSocket cannot send headers, so live streams take `?api_key=`; uvicorn's
access log (and its WebSocket "accepted" lines) print the full path with its query string.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

# Parameter names that carry a secret in the wild; matched case-insensitively, `-` and `_` alike.
CREDENTIAL_PARAMS: Final = ("api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token",
                            "auth", "authorization", "password", "passwd", "secret", "client_secret",
                            "signature", "sig", "session", "jwt", "bearer", "x_api_key")
REDACTED: Final = "[REDACTED]"
_NAMES: Final = "|".join(sorted((re.escape(n).replace("_", "[-_]?") for n in CREDENTIAL_PARAMS),
                                key=len, reverse=True))
# A parameter starts after `?`, `&` or `;` and ends at the next separator, quote or space.
_PARAM: Final = re.compile(rf"(?i)([?&;](?:{_NAMES})=)[^&;#\s\"']*")
LOGGERS: Final = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """Return `text` with the values of credential query parameters replaced by [REDACTED]."""
    return _PARAM.sub(rf"\g<1>{REDACTED}", text) if "=" in text else text


class RedactCredentials(logging.Filter):
    """A logging filter that redacts credential query parameters in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drop it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args: dict[str, Any] = record.args  # type: ignore[assignment]
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        return True


_FILTER: Final = RedactCredentials()


def install() -> None:
    """Attach the filter to uvicorn's loggers (idempotent); call after uvicorn configured logging."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
