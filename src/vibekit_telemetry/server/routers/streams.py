"""Live streams: WebSocket /ws (subscribe, unsubscribe, query) and Server-Sent Events /api/stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ...errors import TelemetryError
from ...query import parse_query
from ..auth import check_stream
from ..body import loads
from ..errors import ApiError, validation_error
from ..streams import ALL, StreamHub, Subscriber, parse_channel
from ._common import MAX_PAGE, check_params, split_values, stream_params
from .events import ERRORS, Strings

router = APIRouter(tags=["streams"])

STREAM_PARAMS: Final = ("session_id", "category", "channel")
CLOSE_CODES: Final = {401: 4401, 403: 4403, 429: 4429, 503: 4503}
# A command is a flat object with a small filter: nothing legitimate nests deeper.
MAX_MESSAGE_DEPTH: Final = 8
POLICY_VIOLATION: Final = 1008


class MessageRejected(Exception):
    """A client message the connection cannot survive (nested too deeply): close with 1008."""


def initial_channels(session_ids: list[str], categories: list[str], channels: list[str]) -> list[str]:
    """Return the rooms a connection starts in: those asked for, else `all`."""
    rooms = [f"session:{s}" for s in session_ids] + [f"category:{c}" for c in categories] + channels
    for room in rooms:
        try:
            parse_channel(room)
        except ValueError as exc:
            raise validation_error([{"field": "channel", "message": str(exc)}], "Invalid channel") from None
    return rooms or [ALL]


def _channel_of(message: dict[str, Any]) -> str:
    """Read the room of a subscribe/unsubscribe message: channel, session_id or category."""
    if isinstance(message.get("channel"), str):
        return str(message["channel"])
    for key, kind in (("session_id", "session"), ("sessionId", "session"), ("category", "category")):
        if isinstance(message.get(key), str) and message[key]:
            return f"{kind}:{message[key]}"
    raise ValueError("give channel (all, session:<id>, category:<name>), session_id or category")


@router.websocket("/ws")
async def websocket_stream(websocket: WebSocket) -> None:
    """Stream events as JSON messages; the client may subscribe, unsubscribe and query."""
    hub: StreamHub = websocket.app.state.hub
    await websocket.accept()
    try:
        check_stream(websocket)
        query = websocket.query_params
        rooms = initial_channels(*(split_values(query.getlist(name)) for name in STREAM_PARAMS))
        # ?batch=true: several waiting messages go out as one {"type": "batch", "messages": [...]} frame,
        # which costs the server one send instead of one per event (dashboards, high-rate consumers).
        batched = query.get("batch", "").lower() in ("1", "true", "yes")
        subscriber = hub.add("ws", rooms, batched=batched)
    except ApiError as exc:
        await websocket.send_json({"type": "error", "error": exc.error, "message": exc.message})
        await websocket.close(CLOSE_CODES.get(exc.status_code, 1008), exc.message[:120])
        return
    except OverflowError as exc:
        await websocket.send_json({"type": "error", "error": "Service Unavailable", "message": str(exc)})
        await websocket.close(4503, "too many connections")
        return
    await websocket.send_text(json.dumps({"type": "connected", "channels": subscriber.channels(),
                                          "heartbeat_s": hub.heartbeat_s, "buffer": hub.buffer_size}))
    sender = asyncio.create_task(_send_loop(websocket, subscriber, hub.heartbeat_s))
    try:
        while True:
            await subscriber.replies_drained()
            text = await websocket.receive_text()
            reply = await _handle(websocket, subscriber, text)
            if reply is not None:
                subscriber.reply(json.dumps(reply, default=str))
    except MessageRejected as exc:
        # Said in a message too, since a close reason is limited to 123 bytes and some clients hide it.
        with contextlib.suppress(Exception):
            await websocket.send_json({"type": "error", "error": "Policy Violation", "message": str(exc)})
            await websocket.close(POLICY_VIOLATION, str(exc)[:120])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.remove(subscriber)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        with contextlib.suppress(Exception):
            await websocket.close()


async def _send_loop(websocket: WebSocket, subscriber: Subscriber, heartbeat_s: float) -> None:
    while True:
        frames = await subscriber.next_frames(heartbeat_s)
        if frames is None:
            with contextlib.suppress(Exception):
                await websocket.close(1001, "server shutting down")
            return
        for frame in frames or [subscriber.heartbeat()]:
            await websocket.send_text(frame)


async def _handle(websocket: WebSocket, subscriber: Subscriber, text: str) -> dict[str, Any] | None:
    try:
        message = loads(text.encode("utf-8", "surrogatepass"), MAX_MESSAGE_DEPTH)
    except ApiError as exc:
        detail = exc.details[0]["message"] if exc.details else exc.message
        if "nested" in detail:
            raise MessageRejected(f"message {detail}") from None
        return {"type": "error", "message": "messages must be JSON objects"}
    if not isinstance(message, dict):
        return {"type": "error", "message": "messages must be JSON objects"}
    kind = message.get("type") or message.get("action")
    request_id = message.get("id")
    try:
        if kind in ("subscribe", "unsubscribe"):
            channel = _channel_of(message)
            if kind == "subscribe":
                subscriber.subscribe(channel)
            else:
                subscriber.unsubscribe(channel)
            return {"type": f"{kind}d", "id": request_id, "channel": channel,
                    "channels": subscriber.channels()}
        if kind == "query":
            filters = message.get("filter", {})
            if not isinstance(filters, dict):
                raise ValueError("filter must be an object of query filters")
            filters = {"limit": 100, **filters}
            parsed = parse_query(filters)
            if parsed.limit is None or parsed.limit > MAX_PAGE:
                raise ValueError(f"limit must be from 1 to {MAX_PAGE}")
            telemetry = websocket.app.state.telemetry
            events = await run_in_threadpool(telemetry.store.query, parsed)
            return {"type": "query_result", "id": request_id, "success": True,
                    "data": [e.to_dict() for e in events]}
        if kind == "ping":
            return {"type": "pong", "id": request_id}
        return {"type": "error", "id": request_id,
                "message": f"unknown message type {kind!r}: subscribe, unsubscribe, query or ping"}
    except (TelemetryError, ValueError) as exc:
        return {"type": "query_result" if kind == "query" else "error", "id": request_id, "success": False,
                "error": str(exc)}


@router.get("/api/stream", operation_id="streamEvents", summary="Live events as Server-Sent Events",
            responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}})
async def sse_stream(
    request: Request,
    session_id: Strings = None, category: Strings = None,
    channel: Annotated[list[str] | None, Query(description="all, session:<id> or category:<name>")] = None,
    api_key: Annotated[str | None, Query(description="for EventSource, which cannot send headers")] = None,
) -> Response:
    """Stream events (`data:` JSON per event), `heartbeat` and `dropped` events; all events by default."""
    check_params(request, stream_params(STREAM_PARAMS))
    check_stream(request)
    hub: StreamHub = request.app.state.hub
    rooms = initial_channels(split_values(session_id), split_values(category), split_values(channel))
    try:
        subscriber = hub.add("sse", rooms)
    except OverflowError as exc:
        raise ApiError(503, "Service Unavailable", str(exc), headers={"Retry-After": "5"}) from None
    return StreamingResponse(_sse(hub, subscriber), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _sse(hub: StreamHub, subscriber: Subscriber) -> AsyncIterator[bytes]:
    try:
        hello = json.dumps({"type": "connected", "channels": subscriber.channels(),
                            "heartbeat_s": hub.heartbeat_s})
        yield f"retry: 3000\nevent: connected\ndata: {hello}\n\n".encode()
        while True:
            batch = await subscriber.next_batch(hub.heartbeat_s)
            if batch is None:
                return
            if not batch:
                yield f"event: heartbeat\ndata: {subscriber.heartbeat()}\n\n".encode()
                continue
            chunks = []
            for message in batch:
                if message.startswith('{"type":"event"'):
                    chunks.append(f"data: {message}\n\n")
                else:
                    kind = json.loads(message).get("type", "message")
                    chunks.append(f"event: {kind}\ndata: {message}\n\n")
            yield "".join(chunks).encode()
    finally:
        hub.remove(subscriber)
