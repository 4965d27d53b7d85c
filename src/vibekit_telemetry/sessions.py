"""The `telemetry.session(...)` context manager, usable with `with` and `async with`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import TelemetryError

if TYPE_CHECKING:
    from .service import Telemetry


class SessionContext:
    """One agent session: start on enter; end completed on exit, or error if an exception escapes."""

    def __init__(self, telemetry: Telemetry, agent_type: str, mode: str | None, prompt: str | None, *,
                 metadata: Mapping[str, Any] | None = None, session_id: str | None = None,
                 sandbox_id: str | None = None, repo_url: str | None = None) -> None:
        self._telemetry = telemetry
        self._mode, self._prompt, self._metadata = mode, prompt, metadata
        self._session_id, self._sandbox_id, self._repo_url = session_id, sandbox_id, repo_url
        self.id: str = ""
        self.category = agent_type
        self.ended = False

    def start(self) -> SessionContext:
        """Record the start event (done by `with`); returns self."""
        if not self.id:
            self.id = self._telemetry.track_start(
                self.category, self._mode, self._prompt, metadata=self._metadata, session_id=self._session_id,
                sandbox_id=self._sandbox_id, repo_url=self._repo_url)
        return self

    def stream(self, data: str, metadata: Mapping[str, Any] | None = None) -> bool:
        """Record one streamed chunk."""
        return self._telemetry.track_stream(self.id, data, metadata=metadata)

    def error(self, error: BaseException | str, metadata: Mapping[str, Any] | None = None) -> bool:
        """Record an error without ending the session."""
        return self._telemetry.track_error(self.id, error, metadata=metadata)

    def event(self, action: str, *, label: str | None = None, value: float | None = None,
              metadata: Mapping[str, Any] | None = None) -> bool:
        """Record a custom event in this session."""
        return self._telemetry.track({"event_type": "custom", "session_id": self.id, "category": self.category,
                                      "action": action, "label": label, "value": value,
                                      "metadata": metadata})  # track() copies it; the chain checks it

    def end(self, status: str = "completed", metadata: Mapping[str, Any] | None = None) -> bool:
        """End the session now (the context manager then does nothing more)."""
        if self.ended:
            return False
        self.ended = True
        return self._telemetry.track_end(self.id, status, metadata=metadata)

    def _finish(self, exc: BaseException | None) -> None:
        if self.ended:
            return
        if exc is None:
            self.end("completed")
            return
        # The application's exception goes on as it was: even with raise_on_error=True, a failure to
        # record it must not replace it (it is noted on the exception instead).
        for record in (partial(self.error, exc), partial(self.end, "error")):
            try:
                record()
            except TelemetryError as failure:
                exc.add_note(f"vibekit-telemetry could not record this in session {self.id}: {failure}")

    def __enter__(self) -> SessionContext:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._finish(exc)

    async def __aenter__(self) -> SessionContext:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._finish(exc)
