"""What the HTTP exporters (webhook, central server, OTLP) share about a refused request."""

from __future__ import annotations

import urllib.error


def error_detail(exc: urllib.error.HTTPError, limit: int = 300) -> str:
    """The start of an error answer's body, as ": text" for a message (empty when there is none)."""
    try:
        text = exc.read(limit).decode("utf-8", "replace").strip()
    except Exception:  # the body is a courtesy; the status says enough
        text = ""
    finally:
        exc.close()
    return f": {text}" if text else ""
