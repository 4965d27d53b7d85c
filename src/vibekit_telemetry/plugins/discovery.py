"""Plugins by name: installed packages' `vibekit_telemetry.plugins` entry points, and config entries."""

from __future__ import annotations

import importlib
from typing import Any, Final

from ..errors import ValidationError

ENTRY_POINT_GROUP: Final = "vibekit_telemetry.plugins"

# Built-in plugins by import path, so listing them imports none of them.
BUILTINS: Final[dict[str, str]] = {
    "cache": "vibekit_telemetry.plugins.builtin:CachePlugin",
    "s3-export": "vibekit_telemetry.plugins.builtin:S3ExportPlugin",
    "compliance": "vibekit_telemetry.plugins.builtin:CompliancePlugin",
    "encryption": "vibekit_telemetry.plugins.builtin:EncryptionPlugin",
}


def installed() -> dict[str, Any]:
    """Installed packages' plugin entry points by name (not loaded)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[dict[str, str]]:
    """Every plugin that can be named in `plugins=[...]`: built-ins and installed ones."""
    out = [{"name": name, "source": "built-in", "target": target} for name, target in BUILTINS.items()]
    for name, ep in sorted(installed().items()):
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version}" if dist is not None else "installed"
        out.append({"name": name, "source": source, "target": ep.value})
    return out


def _load(name: str, field: str) -> Any:
    if name in BUILTINS:
        module, _, attr = BUILTINS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    found = installed().get(name)
    if found is None:
        names = ", ".join(p["name"] for p in available())
        raise ValidationError(field, f"an installed plugin name ({names})", name)
    try:
        return found.load()
    except Exception as exc:  # a broken package names itself instead of crashing start-up
        raise ValidationError(field, f"an installed plugin {name!r} that loads ({exc})", name) from None


def build_plugin(spec: Any, field: str = "plugins[0]") -> Any:
    """A plugin from a config entry: an object, a name, or {"type": name, "options": {...}}."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        return spec  # an object: the manager checks it has hooks
    kind = spec.get("type", spec.get("name"))
    if not isinstance(kind, str) or not kind:
        raise ValidationError(f"{field}.type", "a plugin name", kind)
    options = spec.get("options", {k: v for k, v in spec.items() if k not in ("type", "name")})
    if not isinstance(options, dict):
        raise ValidationError(f"{field}.options", "a mapping of the plugin's options", options)
    target = _load(kind, f"{field}.type")
    if not callable(target):
        return target  # the entry point is a ready plugin instance
    try:
        return target(**options)
    except TypeError as exc:
        raise ValidationError(f"{field}.options", f"options {kind!r} accepts ({exc})", options) from None
