"""The exporter interface: a destination that receives committed events in batches."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..events import TelemetryEvent

DEFAULT_BATCH_SIZE = 500


class PoisonBatchError(Exception):
    """The destination refused the batch itself (e.g. HTTP 400): retrying cannot help, so it is skipped."""


@runtime_checkable
class Exporter(Protocol):
    """A destination. Its worker calls export() with batches in commit order, from one thread.

    `name` keys the persisted cursor, so it must be unique among a store's exporters and stable
    across restarts. `batch_size` is the most events one export() call receives.
    """

    name: str
    batch_size: int

    def export(self, events: list[TelemetryEvent]) -> None:
        """Deliver the batch; return only when the destination has it, raise on any failure.

        Raise PoisonBatchError when the destination rejects this batch for good.
        """

    def shutdown(self) -> None:
        """Release connections; called once, after the last export()."""


class BaseExporter:
    """Convenience base for custom exporters: implement export(), get the rest."""

    name = "custom"
    batch_size = DEFAULT_BATCH_SIZE

    def export(self, events: list[TelemetryEvent]) -> None:
        """Deliver a batch; subclasses override this."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Nothing to release by default."""
