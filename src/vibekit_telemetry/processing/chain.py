"""The processor chain: one ordered list of small steps every event passes through exactly once.

Entry points (the track* calls, track_batch, POST /api/events, and later OTLP, import and the usage
pipeline) hand raw input to `Chain.run`. The first step, `normalise`, turns it into a TelemetryEvent;
every later step is a `Processor` that returns the event (possibly changed) or None to drop it. The
same chain runs on the writer thread (default) or on the caller's thread (strict mode, HTTP ingest),
so lenient and strict handling cannot drift apart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import TelemetryError, ValidationError
from ..events import TelemetryEvent

logger = logging.getLogger("vibekit_telemetry")


@runtime_checkable
class Processor(Protocol):
    """One step of the chain: return the event (changed or not), or None to drop it (counted by name).

    A step may also return a list: events it held back earlier released together with this one
    (the `sample` step keeps a failing session whole this way), or [] to hold this event back for now
    (not a drop). A step that holds events has an `on_discard` attribute: the chain sets it to a
    function that counts the held events the step finally discards, under the step's name.
    """

    name: str

    def process(self, event: TelemetryEvent) -> TelemetryEvent | list[TelemetryEvent] | None:
        """Process one event."""


@dataclass(slots=True, frozen=True)
class DropNotice:
    """What listeners of `dropped` and `error` learn about an event that was not stored.

    Only identifiers and the reason: never the raw input, which a later step (redact) would have
    cleaned, so a listener cannot leak what the store was protected from.
    """

    reason: str
    processor: str
    event_id: str | None = None
    session_id: str | None = None
    event_type: str | None = None


class BatchValidationError(ValidationError):
    """Several events of one batch are invalid; `errors` holds (index, error) for each, in order."""

    def __init__(self, errors: list[tuple[int, ValidationError]], total: int) -> None:
        self.errors = errors
        self.total = total
        index, first = errors[0]
        super().__init__(f"events[{index}].{first.field}", first.expected, first.got,
                         message=f"events[{index}].{first}")


class Normaliser(Protocol):
    """The chain's first step: raw input (a dict in any spelling, or an event) to a TelemetryEvent."""

    name: str

    def process(self, raw: Any) -> TelemetryEvent | None:
        """Return the event raw input describes; raise ValidationError when it describes none."""


OnProblem = Callable[[str, DropNotice, BaseException | None], None]


def _notice(event: TelemetryEvent | None, reason: str, processor: str) -> DropNotice:
    if event is None or not isinstance(event, TelemetryEvent):
        return DropNotice(reason, processor)
    return DropNotice(reason, processor, event.event_id, event.session_id, event.event_type)


def _as_validation(exc: BaseException, processor: str) -> ValidationError:
    """Anything a step raises is bad input for that event (an int too big, a cyclic dict …)."""
    if isinstance(exc, ValidationError):
        return exc
    return ValidationError("event", "valid event values",
                           message=f"event: {processor}: {type(exc).__name__}: {exc}")


class Chain:
    """normalise ─► validate ─► enrich ─► sample ─► redact ─► (yours) ─► truncate ─► encode."""

    def __init__(self, normaliser: Normaliser, processors: Iterable[Processor]) -> None:
        self.normaliser = normaliser
        self._processors: tuple[Processor, ...] = tuple(processors)
        self._lock = threading.Lock()
        self.dropped: dict[str, int] = {}
        self.invalid: dict[str, int] = {}
        self.on_problem: OnProblem | None = None
        for processor in self._processors:
            self._bind(processor)

    def _bind(self, processor: Processor) -> None:
        """Give a step that holds events (it has `on_discard`) the way to count those it discards later."""
        if hasattr(processor, "on_discard"):
            processor.on_discard = lambda events: self.discarded(processor.name, events)  # type: ignore[attr-defined]

    def discarded(self, processor: str, events: Sequence[TelemetryEvent]) -> None:
        """Count events a step held back and has now discarded, each once, and tell `dropped` listeners."""
        for event in events:
            self._problem("dropped", processor, event, "dropped", None)

    @property
    def names(self) -> list[str]:
        """Every step's name, in order."""
        return [self.normaliser.name, *(p.name for p in self._processors)]

    @property
    def processors(self) -> tuple[Processor, ...]:
        """The steps after normalise, in order."""
        return self._processors

    def get(self, name: str) -> Processor | None:
        """Return the step called `name`, if any."""
        return next((p for p in self._processors if p.name == name), None)

    def add(self, processor: Processor, *, before: str | None = None, after: str | None = None) -> None:
        """Insert a processor before or after a named step (default: just before truncate)."""
        if not isinstance(processor, Processor) or not isinstance(getattr(processor, "name", None), str):
            raise ValidationError("processor", "an object with a `name` and a process(event) method", processor)
        if before is not None and after is not None:
            raise ValidationError("before", "before or after, not both", before)
        anchor, offset = (before, 0) if before is not None else (after, 1) if after is not None else ("truncate", 0)
        names = [p.name for p in self._processors]
        if anchor == self.normaliser.name:
            if before is not None:
                raise ValidationError("before", "a step after normalise (nothing runs before it)", before)
            index = 0
        elif anchor in names:
            index = names.index(anchor) + offset
        elif before is None and after is None:
            index = len(names)
        else:
            raise ValidationError("before" if before is not None else "after", "one of " + ", ".join(self.names),
                                  anchor)
        self._bind(processor)
        with self._lock:  # copy-on-write: a writer running the chain keeps its snapshot
            items = list(self._processors)
            items.insert(index, processor)
            self._processors = tuple(items)

    def remove(self, name: str) -> None:
        """Remove the step called `name` (built-in or yours)."""
        with self._lock:
            self._processors = tuple(p for p in self._processors if p.name != name)

    # -- running --------------------------------------------------------------------------------------

    def _count(self, table: dict[str, int], name: str) -> None:
        with self._lock:  # steps run on the writer and on request threads: counts must be exact
            table[name] = table.get(name, 0) + 1

    def _problem(self, kind: str, processor: str, event: TelemetryEvent | None, reason: str,
                 error: BaseException | None) -> None:
        self._count(self.dropped if kind == "dropped" else self.invalid, processor)
        if self.on_problem is not None:
            self.on_problem(kind, _notice(event, reason, processor), error)

    def run(self, raw: Sequence[Any], *, strict: bool = False,
            positions: list[int] | None = None) -> list[TelemetryEvent]:
        """Run raw events through every step; return the ones that survive, in order.

        Lenient (default): a bad event is counted by the step that refused it, reported through
        on_problem, and skipped. Strict: every event is processed, then BatchValidationError (or the
        one ValidationError, for a single event) lists every bad one; nothing is returned partially.
        """
        errors: list[tuple[int, ValidationError]] = []
        events: list[TelemetryEvent] = []
        indices: list[int] = []
        normalise = self.normaliser.process
        name = self.normaliser.name
        for index, item in enumerate(raw):
            try:
                event = normalise(item)
            except Exception as exc:
                error = _as_validation(exc, name)
                if strict:
                    errors.append((index, error))
                else:
                    self._problem("invalid", name, None, str(error), error)
                continue
            if event is None:
                self._problem("dropped", name, None, "dropped", None)
                continue
            events.append(event)
            indices.append(index)
        for processor in self._processors:
            if not events:
                break
            step = processor.process
            kept: list[TelemetryEvent] = []
            kept_positions: list[int] = []
            batch = getattr(processor, "process_batch", None)
            if batch is not None:  # a step that handles a batch at once (plugins: one thread trip per batch)
                for out, index in zip(batch(events), indices, strict=True):
                    if out is None:
                        self._problem("dropped", processor.name, None, "dropped", None)
                        continue
                    kept.append(out)
                    kept_positions.append(index)
                events, indices = kept, kept_positions
                continue
            for event, index in zip(events, indices, strict=True):
                try:
                    out = step(event)
                except Exception as exc:
                    error = _as_validation(exc, processor.name)
                    if not isinstance(exc, TelemetryError):
                        logger.debug("telemetry processor %s raised", processor.name, exc_info=True)
                    if strict:
                        errors.append((index, error))
                    else:
                        self._problem("invalid", processor.name, event, str(error), error)
                    continue
                if out is None:
                    self._problem("dropped", processor.name, event, "dropped", None)
                    continue
                if isinstance(out, list):
                    kept.extend(out)
                    kept_positions.extend([index] * len(out))
                    continue
                kept.append(out)
                kept_positions.append(index)
            events, indices = kept, kept_positions
        if errors:  # strict: the caller gets the error, so nothing is counted here
            errors.sort(key=lambda pair: pair[0])
            if len(raw) == 1:
                raise errors[0][1]
            raise BatchValidationError(errors, len(raw))
        if positions is not None:
            positions.extend(indices)
        return events
