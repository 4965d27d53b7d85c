"""Turn the Python values people put in metadata into JSON values, before the chain redacts and encodes.

What Langfuse's, PostHog's and Sentry's SDKs accept, stored as they store it:

| value | stored as |
| --- | --- |
| `datetime`, `date`, `time` | ISO 8601 text (`isoformat()`) |
| `UUID`, `pathlib` paths | text (`str()`) |
| `Decimal` | a number (`float()`) |
| `Enum` members | their value |
| `set`, `frozenset` | a list (sorted when the items can be) |
| `bytes`, `bytearray`, `memoryview` | UTF-8 text, undecodable bytes as U+FFFD |
| dataclass instances | a JSON object of their fields (`dataclasses.asdict`) |
| pydantic models | `model_dump(mode="json")` |
| NumPy scalars and arrays | `item()` / `tolist()` |

Anything else stays as it is, and the encode step refuses the event naming the value's path: `str()`
of an arbitrary object may be huge, or hold what redaction cannot recognise.
It runs in `validate`, so the text these values become goes through redaction like any other.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import pathlib
import uuid
from typing import Any, Final

_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
_CONTAINERS: Final = frozenset({dict, list, tuple})
# Past this depth values are left for the encoder, which refuses them (a cycle, or nesting past its limit).
_MAX_DEPTH: Final = 200


def jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """Return `value` with known non-JSON values converted; the same object when nothing needed it."""
    for item in value.values():  # the usual metadata: checked without building anything
        kind = type(item)
        if kind not in _PLAIN and (kind not in _CONTAINERS or not _plain(item, 1)):
            break
    else:
        return value
    converted: dict[str, Any] = _convert(value, {}, 0)
    return converted


def _plain(value: Any, depth: int) -> bool:
    """Whether a container holds only JSON values (False when unsure: too deep, maybe a cycle)."""
    if depth > _MAX_DEPTH:
        return False
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind not in _CONTAINERS or not _plain(item, depth + 1):
            return False
    return True


def _convert(value: Any, memo: dict[int, Any], depth: int) -> Any:
    """Convert one value; `memo` holds containers already seen (shared ones are walked once, cycles end)."""
    kind = type(value)
    if kind in _PLAIN or depth > _MAX_DEPTH:
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if kind is dict or kind is list or kind is tuple:
        memo[key] = value  # while it is walked: a cycle back to it is left for the encoder to name
        if kind is dict:
            items = {k: _convert(v, memo, depth + 1) for k, v in value.items()}
            changed = any(items[k] is not v for k, v in value.items())
            result: Any = items if changed else value
        else:
            converted = [_convert(v, memo, depth + 1) for v in value]
            changed = any(c is not v for c, v in zip(converted, value, strict=True))
            result = converted if changed else value
        memo[key] = result
        return result
    known = _known(value)
    if known is value:
        return value
    memo[key] = result = _convert(known, memo, depth + 1)
    return result


def _known(value: Any) -> Any:
    """The JSON-friendly form of a value of a known type, or the value itself."""
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, uuid.UUID | pathlib.PurePath):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:  # items of mixed types: their order is arbitrary anyway
            return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(type(value), "model_dump", None)
    if callable(dump):  # a pydantic model (v2)
        try:
            return value.model_dump(mode="json")
        except Exception:  # not pydantic's model_dump after all: left for the encoder to refuse
            return value
    if type(value).__module__ == "numpy":
        convert = getattr(value, "tolist", None)
        if callable(convert):  # scalars and arrays alike
            return convert()
    return value
