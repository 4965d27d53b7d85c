"""Helpers the routers share: the Telemetry of the app, strict query parameters, the audit log."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from fastapi import Request

from ...store.base import Auditable
from ..auth import STREAM_KEY_PARAMS, Principal
from ..errors import validation_error

if TYPE_CHECKING:
    from ...service import Telemetry

logger = logging.getLogger("vibekit_telemetry.server")

MAX_PAGE: Final = 1000
DEFAULT_PAGE: Final = 100
METADATA_PREFIX: Final = "metadata."


def get_telemetry(request: Request) -> Telemetry:
    """Return the Telemetry instance the app serves."""
    telemetry: Telemetry = request.app.state.telemetry
    return telemetry


_TRUE: Final = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE: Final = frozenset({"false", "0", "no", "off", "f", "n"})


def bool_param(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter (true/false, 1/0, yes/no, on/off); 400 naming it otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise validation_error([{"field": name, "message": "Input should be a valid boolean, unable to interpret "
                                                       "input"}], "Invalid query parameters")


def check_params(request: Request, allowed: Iterable[str], *, metadata: bool = False) -> dict[str, Any]:
    """Refuse unknown query parameters (400, every one named); return `metadata.<key>` filters.

    Parameters starting with `_` (cache busters) are ignored.
    """
    known = set(allowed)
    bad: list[dict[str, str]] = []
    meta: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name in known or name.startswith("_"):
            continue
        if metadata and name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
            meta[name[len(METADATA_PREFIX):]] = value
            continue
        bad.append({"field": name, "message": "unknown query parameter; known: " + ", ".join(sorted(known))
                    + (", metadata.<key>" if metadata else "")})
    if bad:
        raise validation_error(bad, "Invalid query parameters")
    return meta


def stream_params(names: Iterable[str]) -> set[str]:
    """Return the parameter names a live stream accepts, credentials included."""
    return {*names, *STREAM_KEY_PARAMS}


def split_values(values: Iterable[str] | None) -> list[str]:
    """Return the values of a repeatable, comma-separable parameter."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values and empty lists (filters not given)."""
    return {k: v for k, v in values.items() if v is not None and v != []}


def audit(request: Request, principal: Principal, action: str, target: str | None,
          details: dict[str, Any] | None = None) -> None:
    """Record who (a key id, never the key) did what in the store's audit log, when it keeps one."""
    telemetry = get_telemetry(request)
    try:
        store = telemetry.store
    except Exception:
        return
    if not isinstance(store, Auditable):
        return
    client = request.client.host if request.client else "unknown"
    try:
        store.record_audit(principal.key_id, action, target, {**(details or {}), "client": client, "via": "api"})
    except Exception as exc:
        logger.warning("could not record audit entry %s %s: %s", action, target, exc)
