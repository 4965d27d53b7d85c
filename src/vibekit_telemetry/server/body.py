"""Request bodies: size limit (413), read deadline (408), content types (415), JSON parsing and depth (400)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body, json_response

_fast_loads: Callable[[bytes], Any] | None
try:  # the server extra: parses an ingest body several times faster than the stdlib
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson ships with the server extra
    _fast_loads = None

# Only types a browser cannot send cross-site without a CORS preflight (see browser_guard): text/plain
# and form types are refused with 415, so `curl -d` needs `-H 'Content-Type: application/json'`.
# An empty type is let through here only to answer an empty body with a clear 400.
JSON_TYPES: Final = frozenset({"", "application/json"})
NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                                 "application/x-jsonlines", "application/jsonlines"})


class BodyTooLarge(ApiError):
    """The request body is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "Payload Too Large", f"request body over the {limit:,}-byte limit",
                         [{"field": "body", "message": f"at most {limit} bytes"}])


class BodyTimeout(ApiError):
    """The client did not finish sending its body in time (a slow-loris body)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, "Request Timeout", f"the request body was not received within {seconds:g} s",
                         [{"field": "body", "message": f"send the whole body within {seconds:g} s"}],
                         headers={"Connection": "close"})


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes (by Content-Length up front, else while read) or slower than `timeout_s`."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float = 60.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length, then count the bytes as the app reads them."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await json_response(error_body("Bad Request", "invalid Content-Length header"), 400)(
                        scope, receive, send)
                    return
                if declared > limit:
                    await BodyTooLarge(limit).response()(scope, receive, send)
                    return
        received = 0
        started = False
        body_done = False
        loop_deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body, receive() only waits for a disconnect (streaming responses): no deadline.
                return await receive()
            try:
                # timeout_at rather than wait_for: no extra task for each receive() of each request.
                async with asyncio.timeout_at(loop_deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:
            # Raised outside an endpoint (the app's handlers answer it inside one).
            if not started:
                await exc.response()(scope, receive, send)


def media_type(content_type: str | None) -> str:
    """Return the bare media type of a Content-Type header, lower-cased."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bad_body(message: str) -> ApiError:
    return ApiError(400, "Validation Error", "Invalid body", [{"field": "body", "message": message}])


def loads(raw: bytes, max_depth: int) -> Any:
    """Parse one JSON document; 400 for malformed JSON, NaN/Infinity, bad UTF-8 or deep nesting."""
    if _fast_loads is not None:
        try:
            value = _fast_loads(raw)
        except ValueError:
            pass  # what orjson refuses, the stdlib parses or explains (lone surrogates, huge integers …)
        else:
            check_depth(value, max_depth)
            return value
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _bad_body(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise _bad_body("not UTF-8 text") from None
    except RecursionError:
        raise _bad_body(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:
        raise _bad_body(str(exc)) from None
    check_depth(value, max_depth)
    return value


_CONTAINERS: Final = frozenset((dict, list))


def check_depth(value: Any, max_depth: int) -> None:
    """Raise 400 when containers nest deeper than max_depth (iterative: no recursion on hostile input)."""
    if type(value) not in _CONTAINERS:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise _bad_body(f"nested more than {max_depth} levels deep")
        children = item.values() if type(item) is dict else item
        # Most containers of an event batch hold only scalars: one C-level pass over their types
        # skips them (the body check cost more than parsing it with orjson).
        if _CONTAINERS.isdisjoint(map(type, children)):
            continue
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)


def parse_body(raw: bytes, content_type: str | None, max_depth: int) -> Any:
    """Parse a request body by its content type: JSON, or NDJSON as a list; 415 for anything else."""
    kind = media_type(content_type)
    if kind in NDJSON_TYPES:
        items = []
        for number, line in enumerate(raw.splitlines(), 1):
            if line.strip():
                try:
                    items.append(loads(line, max_depth))
                except ApiError as exc:
                    exc.details = [{"field": f"line {number}", "message": d["message"]} for d in exc.details]
                    raise
        return items
    if kind in JSON_TYPES or kind.endswith("+json"):
        if not raw.strip():
            raise _bad_body("empty body: send one event, an array of events, or {\"events\": [...]}")
        return loads(raw, max_depth)
    raise ApiError(415, "Unsupported Media Type", f"unsupported content type {kind!r}",
                   [{"field": "Content-Type", "message": "application/json or application/x-ndjson"}])
