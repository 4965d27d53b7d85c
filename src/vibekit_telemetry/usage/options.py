"""sanitize_options: only whitelisted option keys, and free-text values only where allowed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def _as_mapping(options: Any) -> Mapping[str, Any]:
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return options
    if hasattr(options, "__dict__"):  # argparse.Namespace and similar
        namespace: dict[str, Any] = vars(options)
        return namespace
    raise TypeError(f"options: expected a mapping or an argparse.Namespace, got {type(options).__name__}")


def sanitize_options(options: Any, allowed: Collection[str],
                     keep_values: Collection[str] = ()) -> dict[str, Any]:
    """Return the options worth reporting: whitelisted keys only, unset ones (None, False) left out.

    Booleans and numbers are kept as they are. Any other value (a path, a query, a list) becomes
    `true`, "the option was given", unless its key is in `keep_values` (e.g. `model`, `provider`),
    where a short string is kept.
    """
    out: dict[str, Any] = {}
    for key, value in _as_mapping(options).items():
        if key not in allowed or value is None or value is False:
            continue
        kept_text = key in keep_values and isinstance(value, str) and len(value) <= 200
        if isinstance(value, bool | int | float) or kept_text:
            out[key] = value
        else:
            out[key] = True
    return out
