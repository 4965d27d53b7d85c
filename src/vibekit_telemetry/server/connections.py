"""Slow clients: a deadline for request headers, and a cap on open connections that sheds the idlest.

uvicorn bounds idle keep-alive time but not the time a client takes to send its headers, so a client
sending one byte a second holds a connection (and a file descriptor) for ever; a thousand of them exhaust
the process's file limit and nothing, /health included, can connect. The HTTP protocol class built here:

- closes a connection that has not finished its request headers `header_timeout_s` after it opened
  (or after its previous response);
- when `max_connections` are open, closes the oldest connection still waiting for headers to make room
  for the new one, so fresh clients (health probes, people) are served while a slow-loris flood lasts.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any, Final

logger = logging.getLogger("vibekit_telemetry.server")

# File descriptors kept free for the store, logs and the listening socket.
FD_RESERVE: Final = 64
# Room kept for new connections: past `cap - HEADROOM` open ones, each new one sheds an idle one.
HEADROOM: Final = 16


def connection_cap(configured: int) -> int:
    """Return the connections this process can hold: the setting, or fewer if the file limit is lower."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(HEADROOM * 2, min(configured, soft - FD_RESERVE))


class ConnectionGuard:
    """What the protocol instances of one server share: the header deadline and who waits for headers."""

    def __init__(self, header_timeout_s: float, max_connections: int) -> None:
        self.header_timeout_s = header_timeout_s
        self.cap = connection_cap(max_connections)
        # Connections that have not sent complete headers yet, oldest first (dicts keep insertion order).
        self.waiting: dict[Any, None] = {}
        self.shed = 0
        self.timed_out = 0


class _GuardMixin:
    """Header deadline and shedding for a uvicorn HTTP protocol (mixed in before the protocol class)."""

    guard: ConnectionGuard
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Register the connection, shed the oldest idle one when full, and start the header clock."""
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.guard.cap - HEADROOM:
            self._shed_oldest()
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._headers_done()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        """After a response the connection waits for the next request's headers: the clock restarts."""
        super().on_response_complete()  # type: ignore[misc]
        cycle = getattr(self, "cycle", None)
        # A pipelined request may already be running: its headers are in.
        if not self.transport.is_closing() and (cycle is None or cycle.response_complete):
            self._await_headers()

    def _await_headers(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.guard.header_timeout_s, self._header_deadline)
        self.guard.waiting[self] = None

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self.guard.waiting.pop(self, None)

    def _header_deadline(self) -> None:
        self._header_timer = None
        self.guard.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.guard.timed_out += 1
            self.transport.close()

    def _shed_oldest(self) -> None:
        for victim in self.guard.waiting:
            if victim is not self:
                victim._headers_done()
                victim.transport.close()
                self.guard.shed += 1
                if self.guard.shed in (1, 100) or self.guard.shed % 10_000 == 0:
                    logger.warning("%d connections open: closed %d waiting for request headers so far "
                                   "(slow or idle clients)", len(self.connections), self.guard.shed)
                return


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """Return uvicorn's HTTP protocol class (httptools, else h11) with the header deadline and shedding."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class GuardedHttpTools(_GuardMixin, HttpToolsProtocol):  # type: ignore[misc]
            """httptools protocol: headers are complete at its on_headers_complete callback."""

            def on_headers_complete(self) -> None:
                """Stop the header clock, then let uvicorn start the request."""
                self._headers_done()
                super().on_headers_complete()

        GuardedHttpTools.guard = guard
        return GuardedHttpTools
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        import h11
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class GuardedH11(_GuardMixin, H11Protocol):  # type: ignore[misc]
            """h11 protocol: headers are complete once the peer leaves the IDLE state."""

            def handle_events(self) -> None:
                """Let uvicorn parse; once the request line and headers are in, stop the header clock."""
                super().handle_events()
                if self.conn.their_state is not h11.IDLE:
                    self._headers_done()

        GuardedH11.guard = guard
        return GuardedH11
