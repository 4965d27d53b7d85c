"""Stores and exporters by type name: `storage=[{"type": ...}]` entries are built from this registry.

Three sources, looked up in this order: types registered in this process (`register_store`,
`register_exporter`), the built-in types, and installed packages' entry points in the group
`vibekit_telemetry.providers` (the entry point's name is the type; it loads a factory; a factory
with `kind = "exporter"` builds exporters, any other builds stores).

A factory is called as `factory(options, field)`: the entry's options (a dict of its own) and the
field path naming them in errors (`storage[2].options`). It returns a store (an object with
`store_batch`) or an exporter (`name`, `batch_size`, `export`, `shutdown`), not yet started.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal

from .errors import ValidationError

Kind = Literal["store", "exporter"]
Factory = Callable[[dict[str, Any], str], Any]
ENTRY_POINT_GROUP: Final = "vibekit_telemetry.providers"

# Built-ins by import path, so naming a type (config validation) imports none of them.
_BUILTINS: Final[dict[str, tuple[Kind, str]]] = {
    "sqlite": ("store", "vibekit_telemetry.store.factory:build_sqlite"),
    "postgres": ("store", "vibekit_telemetry.store.factory:build_postgres"),
    "postgresql": ("store", "vibekit_telemetry.store.factory:build_postgres"),
    "memory": ("store", "vibekit_telemetry.store.factory:build_memory"),
    "custom": ("store", "vibekit_telemetry.store.factory:build_custom"),
    "webhook": ("exporter", "vibekit_telemetry.exporters.webhook:build_webhook"),
    "otlp": ("exporter", "vibekit_telemetry.otlp.exporter:build_otlp"),
    "usage-batches": ("exporter", "vibekit_telemetry.usage.batcher:build_usage_batches"),
    "server": ("exporter", "vibekit_telemetry.exporters.server:build_server"),
}

_lock = threading.Lock()
_registered: dict[str, tuple[Kind, Factory]] = {}
_entry_points: dict[str, Any] | None = None  # name -> importlib.metadata.EntryPoint, read once


def _check_name(type_: Any) -> str:
    if not isinstance(type_, str) or not type_.strip():
        raise ValidationError("type", "a non-empty type name", type_)
    return type_


def register_store(type_: str, factory: Factory) -> None:
    """Make `{"type": type_}` storage entries build a store with `factory(options, field)`."""
    _register(type_, "store", factory)


def register_exporter(type_: str, factory: Factory) -> None:
    """Make `{"type": type_}` storage entries build an exporter with `factory(options, field)`."""
    _register(type_, "exporter", factory)


def _register(type_: str, kind: Kind, factory: Factory) -> None:
    _check_name(type_)
    if not callable(factory):
        raise ValidationError("factory", "a callable factory(options, field)", factory)
    with _lock:
        _registered[type_] = (kind, factory)


def unregister(type_: str) -> None:
    """Forget a type registered in this process (built-ins and entry points stay)."""
    with _lock:
        _registered.pop(type_, None)


def _installed() -> dict[str, Any]:
    """The entry points of installed packages, read once per process (it scans every installed package)."""
    global _entry_points
    with _lock:
        if _entry_points is None:
            from importlib.metadata import entry_points

            _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return _entry_points


def known_types() -> dict[str, Kind]:
    """Return every type name that can be built, with whether it is a store or an exporter."""
    out: dict[str, Kind] = {name: kind for name, (kind, _) in _BUILTINS.items()}
    for name, ep in _installed().items():
        out.setdefault(name, _entry_kind(_load_entry(name, ep, "type")))
    with _lock:
        out.update({name: kind for name, (kind, _) in _registered.items()})
    return dict(sorted(out.items()))


def check_options(options: Mapping[str, Any], known: Collection[str], field: str,
                  required: Mapping[str, str] | None = None) -> None:
    """A factory's first check: an unknown option, or a missing required one (name -> what), names its field."""
    unknown = set(options) - set(known)
    if unknown:
        raise ValidationError(f"{field}.{sorted(unknown)[0]}", "one of " + ", ".join(sorted(known)))
    for name, expected in (required or {}).items():
        if name not in options:
            raise ValidationError(f"{field}.{name}", expected)


def number_option(options: Mapping[str, Any], name: str, field: str, default: Any, *, minimum: float,
                  maximum: float | None = None, integer: bool = False, above: bool = False,
                  what: str = "") -> Any:
    """A numeric option checked against its range (above: strictly greater than minimum); the error names it.

    Booleans and strings are refused (True would pass for 1, "5000" for a number); None is the
    default's only way in.
    """
    value = options.get(name, default)
    if value is None and default is None:
        return None
    kinds = int if integer else (int, float)
    low_ok = isinstance(value, kinds) and not isinstance(value, bool) and (
        value > minimum if above else value >= minimum)
    if not low_ok or (maximum is not None and value > maximum) or value != value:  # NaN is never in range
        if above:
            bound = f"> {minimum:g}"
        else:
            bound = f"from {minimum:g} to {maximum:g}" if maximum is not None else f">= {minimum:g}"
        kind = "an integer" if integer else "a number"
        raise ValidationError(f"{field}.{name}", f"{kind} {bound}" + (f" ({what})" if what else ""), value)
    return value


def bool_option(options: Mapping[str, Any], name: str, field: str, default: bool | None) -> bool | None:
    """A true/false option; a string such as "false" is refused rather than read as true."""
    value = options.get(name, default)
    if value is None and default is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(f"{field}.{name}", "true or false", value)
    return value


def _unknown(type_: Any, field: str) -> ValidationError:
    names = ", ".join(known_types())
    return ValidationError(field, f"one of the known storage types ({names})", type_)


def check_type(type_: Any, field: str = "type") -> str:
    """Return the type name if a store or exporter of that type can be built; raise ValidationError if not."""
    if not isinstance(type_, str):
        raise _unknown(type_, field)
    with _lock:
        if type_ in _registered:
            return type_
    if type_ in _BUILTINS or type_ in _installed():
        return type_
    raise _unknown(type_, field)


def _load_entry(name: str, ep: Any, field: str) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin names itself instead of crashing start-up
        raise ValidationError(field, f"an installed provider {name!r} that loads ({exc})", name) from None


def _entry_kind(factory: Any) -> Kind:
    return "exporter" if getattr(factory, "kind", "store") == "exporter" else "store"


def resolve(type_: Any, field: str = "type") -> tuple[Kind, Factory]:
    """Return (kind, factory) for a type name; ValidationError naming `field` and the known types if unknown."""
    name = check_type(type_, field)
    with _lock:
        found = _registered.get(name)
    if found is not None:
        return found
    if name in _BUILTINS:
        kind, path = _BUILTINS[name]
        module, _, attr = path.partition(":")
        factory: Factory = getattr(importlib.import_module(module), attr)
        return kind, factory
    loaded = _load_entry(name, _installed()[name], field)
    if not callable(loaded):
        raise ValidationError(field, f"an installed provider {name!r} whose entry point is a factory", loaded)
    return _entry_kind(loaded), loaded


def kind_of(type_: Any, field: str = "type") -> Kind:
    """Return whether a type builds a store or an exporter."""
    return resolve(type_, field)[0]


def build(type_: Any, options: Mapping[str, Any] | None = None, *, field: str = "storage[0]") -> tuple[Kind, Any]:
    """Build what a storage entry describes: (kind, the store or exporter), not yet opened or started.

    `field` names the entry in errors: `{field}.type` for an unknown type, `{field}.options...` for
    bad options (raised by the factory).
    """
    kind, factory = resolve(type_, f"{field}.type")
    obj = factory(dict(options or {}), f"{field}.options")
    if kind == "store" and not callable(getattr(obj, "store_batch", None)):
        raise ValidationError(f"{field}.type", f"a factory for {type_!r} that returns a store (with store_batch)",
                              obj)
    if kind == "exporter":
        from .exporters.base import Exporter

        if not isinstance(obj, Exporter):
            raise ValidationError(f"{field}.type", f"a factory for {type_!r} that returns an exporter "
                                  "(name, batch_size, export, shutdown)", obj)
    return kind, obj
