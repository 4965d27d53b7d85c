"""Configuration mistakes made visible: unknown options (with the closest known one) and where each value came from."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic import BaseModel
from pydantic.alias_generators import to_snake

from .errors import ValidationError

logger = logging.getLogger("vibekit_telemetry")

# TELEMETRY_* variables read outside config.py (the server, the privacy and usage components); an unknown
# variable is reported only when it looks like a known one, since other components may read their own.
_OTHER_ENV: Final = frozenset({
    "TELEMETRY_ALLOWED_ORIGINS", "TELEMETRY_API_KEYS", "TELEMETRY_AUTH_ENABLED", "TELEMETRY_BEARER_TOKENS",
    "TELEMETRY_MAX_BODY_BYTES", "TELEMETRY_RATE_LIMIT", "TELEMETRY_REDIS_URL", "TELEMETRY_TRUSTED_PROXIES",
    "TELEMETRY_ENCRYPTION_ENABLED", "TELEMETRY_ENCRYPTION_KEY", "TELEMETRY_ENCRYPTION_PASSPHRASE",
    "TELEMETRY_DATA_DESCRIPTION", "TELEMETRY_DOCS_PG_URL", "TELEMETRY_GRPC_PORT", "TELEMETRY_GRPC_TLS_CERT",
    "TELEMETRY_GRPC_TLS_KEY",
})
# Fields whose value is free-form (a dict the user fills): their keys are not options.
_FREE_FORM: Final = frozenset({"options", "context", "metadata"})


class UnknownOption:
    """One key no section knows: where it was given and the closest known spelling."""

    def __init__(self, path: str, source: str, suggestion: str | None) -> None:
        self.path, self.source, self.suggestion = path, source, suggestion

    def message(self) -> str:
        """The warning text: names the key, where it came from and the closest known option."""
        hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
        return f"unknown option {self.path!r} (from {self.source}){hint}"


def _names(model: type[BaseModel]) -> dict[str, str]:
    """Every accepted spelling of a model's fields (name, alias, snake_case) -> the field name."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        names[name] = name
        if info.alias:
            names[info.alias] = name
    return names


def _section(model: type[BaseModel], field: str) -> type[BaseModel] | None:
    annotation = model.model_fields[field].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_options(values: Mapping[str, Any], model: type[BaseModel], source: str,
                    prefix: str = "") -> Iterator[UnknownOption]:
    """Yield every key of values (recursively into sections) that the model does not define."""
    names = _names(model)
    for key, value in values.items():
        if not isinstance(key, str):
            continue
        field = names.get(key) or names.get(to_snake(key))
        path = f"{prefix}{key}"
        if field is None:
            close = difflib.get_close_matches(to_snake(key), list(model.model_fields), n=1, cutoff=0.6)
            yield UnknownOption(path, source, f"{prefix}{close[0]}" if close else None)
            continue
        if field in _FREE_FORM:
            continue
        section = _section(model, field)
        if section is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping):
                yield from unknown_options(item, section, source, f"{path}.")


def unknown_env(known: set[str]) -> Iterator[UnknownOption]:
    """Yield TELEMETRY_* variables that are not known but look like a known one (a typo)."""
    everything = sorted(known | _OTHER_ENV)
    for name in os.environ:
        if not name.startswith("TELEMETRY_") or name in known or name in _OTHER_ENV:
            continue
        close = difflib.get_close_matches(name, everything, n=1, cutoff=0.8)
        if close:
            yield UnknownOption(name, "the environment", close[0])


def report_unknown(found: list[UnknownOption], *, raise_on_error: bool) -> None:
    """Warn about each unknown option; raise ValidationError for the first one when raise_on_error."""
    for option in found:
        if raise_on_error and option.source != "the environment":
            expected = "a known option" + (f" (did you mean {option.suggestion!r}?)" if option.suggestion else "")
            raise ValidationError(option.path, expected, message=f"{option.path}: {option.message()}")
        logger.warning("telemetry config: %s", option.message())


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value and not prefix.endswith(tuple(f"{f}." for f in _FREE_FORM)):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _has(values: Mapping[str, Any], path: str) -> bool:
    current: Any = values
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return False
        match = next((k for k in current if isinstance(k, str) and (k == part or to_snake(k) == part)), None)
        if match is None:
            return False
        current = current[match]
    return True


def explain(config_file: str | os.PathLike[str] | None = None) -> list[tuple[str, Any, str]]:
    """Resolve the configuration as Telemetry() would and say where each value came from."""
    from . import config as cfg

    file_path = cfg.config_file_path(config_file)
    file_values = cfg.read_config_file(file_path) if file_path else {}
    env_values = cfg._env_values()
    env_names = {field: name for name, field in cfg.ENV_FIELDS.items()}
    env_names.update(db_path=cfg.ENV_DB_PATH, database_url=cfg.ENV_DATABASE_URL, disabled=cfg.ENV_DISABLED)
    loaded = cfg.load_config(config_file=file_path)
    resolved = loaded.model_dump(exclude={"providers", "processors", "plugins"})
    rows: list[tuple[str, Any, str]] = []
    for path, value in _flatten(resolved):
        if path in env_values:
            source = f"env {env_names.get(path, 'TELEMETRY_*')}"
        elif _has(file_values, path):
            source = f"file {file_path}"
        else:
            source = "default"
        rows.append((path, value, source))
    rows.extend(_env_store_rows(loaded))
    return rows


def _env_store_rows(loaded: Any) -> list[tuple[str, Any, str]]:
    """Rows for TELEMETRY_PRUNE_DAYS / _MAX_SIZE_MB where they set the primary store's retention."""
    from . import config as cfg

    entries = loaded.storage_entries()
    index = next((i for i, e in enumerate(entries) if e.type in ("sqlite", "postgresql")), None)
    if index is None:
        return []
    options = entries[index].options
    return [(f"storage[{index}].options.{option}", options[option], f"env {env_name}")
            for env_name, option in cfg.ENV_STORE_OPTIONS.items()
            if (value := cfg.env_store_value(env_name)) is not None and options.get(option) == value]
