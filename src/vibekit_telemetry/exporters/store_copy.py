"""A second store (or a user's write-only provider) as an exporter: it follows the primary like any destination."""

from __future__ import annotations

import logging

from ..events import TelemetryEvent
from ..store.base import StorageProvider
from .base import DEFAULT_BATCH_SIZE

logger = logging.getLogger("vibekit_telemetry")


class StoreExporter:
    """Copies committed events into another StorageProvider through its store_batch().

    The provider was opened with the others; a failure raises, so the worker retries with backoff and
    the breaker, and the primary store's writer never waits for it.
    """

    def __init__(self, provider: StorageProvider, index: int) -> None:
        self.provider = provider
        self.name = f"store:{getattr(provider, 'name', 'custom')}:{index}"
        self.batch_size = DEFAULT_BATCH_SIZE
        self.refused = 0

    def export(self, events: list[TelemetryEvent]) -> None:
        """Store the batch; rows the provider refuses are counted and logged, not retried."""
        result = self.provider.store_batch(events)
        if result is not None and result.rejected:
            self.refused += len(result.rejected)
            logger.warning("telemetry store %s refused %d events: %s", self.name, len(result.rejected),
                           result.rejected[0][1])

    def shutdown(self) -> None:
        """The runtime shuts the provider down with the other stores."""
