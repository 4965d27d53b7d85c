"""The processor chain every event passes through: normalise, validate, enrich, sample, redact, truncate, encode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chain import BatchValidationError, Chain, DropNotice, Processor
from .redact import Redact, build_redact
from .steps import Encode, Enrich, Normalise, Sample, Truncate, Validate

if TYPE_CHECKING:
    from ..config import TelemetryConfig

__all__ = ["BatchValidationError", "Chain", "DropNotice", "Encode", "Enrich", "Normalise", "Processor", "Redact",
           "Sample", "Truncate", "Validate", "build_chain"]


def build_chain(config: TelemetryConfig, extra: list[Any] | None = None) -> Chain:
    """The default chain for a config, with the user's processors (config.processors) before truncate."""
    context = {**({"environment": config.environment} if config.environment else {}), **config.context}
    chain = Chain(Normalise(), [
        Validate(),
        Enrich(service_name=config.service_name, service_version=config.service_version, context=context),
        Sample(config.sample_rate, keep_errors=config.keep_errors),
        build_redact(config.security),
        Truncate(config.max_field_length),
        Encode(),
    ])
    if config.reliability.rate_limit.enabled:
        from ..reliability import TrackRateLimit

        limit = config.reliability.rate_limit
        chain.add(TrackRateLimit(limit.max_requests, limit.window_ms), before="sample")
    for processor in extra or ():
        chain.add(processor)
    return chain
