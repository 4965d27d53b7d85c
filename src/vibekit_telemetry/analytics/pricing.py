"""Token usage from event metadata and its cost from a price table users can override."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

# USD per 1 million tokens (input, output), list prices of late 2025; override with
# `analytics={"prices": {"my-model": [1.0, 2.0]}}` or `Pricing(overrides=...)`.
DEFAULT_PRICES: Final[dict[str, tuple[float, float]]] = {
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude": (3.0, 15.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4": (30.0, 60.0),
    "gpt-5": (1.25, 10.0),
    "o3": (2.0, 8.0),
    "codex": (1.25, 10.0),
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.3, 2.5),
    "gemini": (1.25, 10.0),
}

_INPUT_KEYS: Final = ("prompt_tokens", "input_tokens", "promptTokens", "inputTokens")
_OUTPUT_KEYS: Final = ("completion_tokens", "output_tokens", "completionTokens", "outputTokens")


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def token_usage(metadata: Mapping[str, Any] | None) -> tuple[int, int]:
    """Return (prompt, completion) tokens from metadata or its `usage` object (0, 0 when absent)."""
    if not metadata:
        return 0, 0
    usage = metadata.get("usage")
    source: Mapping[str, Any] = usage if isinstance(usage, Mapping) else metadata
    prompt = completion = 0
    for key in _INPUT_KEYS:
        if key in source:
            prompt = _number(source[key])
            break
    for key in _OUTPUT_KEYS:
        if key in source:
            completion = _number(source[key])
            break
    return prompt, completion


def model_of(metadata: Mapping[str, Any] | None, category: str | None) -> str | None:
    """Return the model named in metadata (`model`, `usage.model`), else None."""
    if metadata:
        for source in (metadata, metadata.get("usage")):
            if isinstance(source, Mapping) and isinstance(source.get("model"), str):
                return str(source["model"])
    return None


class Pricing:
    """Prices per million tokens by model name; the longest known prefix of a name wins."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.prices: dict[str, tuple[float, float]] = dict(DEFAULT_PRICES)
        for name, price in (overrides or {}).items():
            self.prices[str(name)] = _price(name, price)
        self._by_length = sorted(self.prices, key=len, reverse=True)
        self._memo: dict[str, tuple[float, float] | None] = {}

    def price(self, model: str | None) -> tuple[float, float] | None:
        """Return (input, output) USD per million tokens for a model (or agent) name, or None."""
        if not model:
            return None
        if model in self._memo:
            return self._memo[model]
        lowered = model.lower()
        found = next((self.prices[n] for n in self._by_length if lowered.startswith(n.lower())), None)
        if len(self._memo) < 10_000:  # model names are few; a bound keeps odd input from growing it
            self._memo[model] = found
        return found

    def cost(self, model: str | None, prompt: int, completion: int) -> float:
        """Return the USD cost of the tokens (0 for an unknown model)."""
        price = self.price(model)
        if price is None:
            return 0.0
        return (prompt * price[0] + completion * price[1]) / 1_000_000


def _price(name: str, price: Any) -> tuple[float, float]:
    if isinstance(price, Mapping):
        price = (price.get("input"), price.get("output"))
    if (isinstance(price, list | tuple) and len(price) == 2
            and all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in price)):
        return float(price[0]), float(price[1])
    raise ValueError(f"analytics.prices[{name!r}]: expected [input, output] USD per million tokens, got {price!r}")
