"""Broadcasts: data sent on a channel, to every subscriber of that channel whatever its transport.

`telemetry.broadcast(channel, data)` (or a provider's broadcast) emits one `stream:broadcast` on the
Telemetry. Everything live listens there: in-process provider handlers, the API server's stream hub
(WebSocket and SSE clients) and gRPC `Listen` calls. The data is encoded to JSON once, here, so a
value no remote client could read is refused before anyone gets it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent, now_ms

BROADCAST_EVENT: Final = "stream:broadcast"
ALL: Final = "all"
# Your own channel names: letters, digits and . _ - / (not starting with a separator), up to 128. No
# colon: `kind:value` is kept for the event rooms, so a mistyped `sesion:x` is an error, not a new room.
_CUSTOM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
CHANNEL_HELP: Final = "all, session:<id>, category:<name>, or a name of letters, digits and . _ - / (<= 128)"


def parse_channel(channel: Any) -> tuple[str, str | None]:
    """Split a channel into (kind, value): ("all", None), ("session", id), ("category", name) or ("channel", name).

    Raises ValueError naming what is expected otherwise.
    """
    if channel == ALL:
        return ALL, None
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"unknown channel {channel!r}: expected {CHANNEL_HELP}")
    kind, sep, value = channel.partition(":")
    if sep and kind in ("session", "category"):
        if not value:
            raise ValueError(f"unknown channel {channel!r}: {kind}:<value> needs a value")
        return kind, value
    if _CUSTOM.fullmatch(channel) is None:
        raise ValueError(f"unknown channel {channel!r}: expected {CHANNEL_HELP}")
    return "channel", channel


def check_channel(channel: Any) -> str:
    """The channel, or ValidationError naming `channel`."""
    try:
        parse_channel(channel)
    except ValueError as exc:
        raise ValidationError("channel", CHANNEL_HELP, channel) from exc
    return str(channel)


@dataclass(slots=True, frozen=True)
class Broadcast:
    """Data sent on a channel: the value for in-process handlers, its JSON text for remote clients."""

    channel: str
    data: Any
    data_json: str
    timestamp: int = field(default_factory=now_ms)

    @classmethod
    def of(cls, channel: Any, data: Any) -> Broadcast:
        """A checked broadcast: a known channel and JSON-encodable data (a TelemetryEvent is sent as its dict)."""
        chosen = check_channel(channel)
        payload = data.to_dict() if isinstance(data, TelemetryEvent) else data
        try:
            text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError("data", f"JSON-encodable data (dict, list, str, number, bool, None): {exc}",
                                  type(data).__name__) from None
        return cls(chosen, data, text)

    def message(self) -> str:
        """The WebSocket/SSE message: {"type": "broadcast", "channel", "data", "ts"}."""
        return (f'{{"type":"broadcast","channel":{json.dumps(self.channel)},"data":{self.data_json},'
                f'"ts":{self.timestamp}}}')


def emit_broadcast(emitter: Any, channel: Any, data: Any) -> Broadcast:
    """Check and emit a broadcast on a Telemetry's emitter; return it."""
    item = Broadcast.of(channel, data)
    emitter.emit(BROADCAST_EVENT, item)
    return item
