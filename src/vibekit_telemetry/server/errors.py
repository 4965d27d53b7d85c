"""One error shape for every failure (seed 001): `{"error", "message", "details": [{"field", "message"}]}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from ..errors import StoreError, ValidationError

logger = logging.getLogger("vibekit_telemetry.server")

Detail = dict[str, str]


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def dumps(data: Any) -> bytes:
    """Encode a JSON document compactly (UTF-8, no NaN)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_default).encode("utf-8")


class JSONBody(Response):
    """A JSON response encoded with the stdlib in one pass (faster than FastAPI's jsonable_encoder)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode the content as JSON."""
        return dumps(content)


def json_response(content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> JSONBody:
    """Return a JSON response."""
    return JSONBody(content, status_code=status_code, headers=dict(headers) if headers else None)


def error_body(error: str, message: str, details: Sequence[Detail] = ()) -> dict[str, Any]:
    """Return the error document every failing request gets."""
    return {"error": error, "message": message, "details": list(details)}


class ApiError(StarletteHTTPException):
    """An HTTP error with the seed 001 shape; raise it anywhere in a request."""

    def __init__(self, status_code: int, error: str, message: str, details: Sequence[Detail] = (), *,
                 headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(status_code, message, dict(headers) if headers else None)
        self.error = error
        self.message = message
        self.details = list(details)
        self.extra = dict(extra or {})

    def response(self) -> JSONBody:
        """Return the JSON response for this error."""
        body = error_body(self.error, self.message, self.details)
        body.update(self.extra)
        return json_response(body, self.status_code, self.headers)


def validation_error(details: Sequence[Detail], message: str = "Invalid request") -> ApiError:
    """Return a 400 Validation Error listing every bad field."""
    return ApiError(400, "Validation Error", message, details)


def from_validation(exc: ValidationError, prefix: str = "") -> Detail:
    """Turn a package ValidationError into one detail entry."""
    field = f"{prefix}{exc.field}" if prefix else exc.field
    text = str(exc)
    if text.startswith(f"{exc.field}: "):
        text = text[len(exc.field) + 2:]
    return {"field": field, "message": text}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "body", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "request"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return exc.response()
    message = str(exc.detail) if exc.detail else _phrase(exc.status_code)
    return json_response(error_body(_phrase(exc.status_code), message), exc.status_code, exc.headers)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid value"))}
               for e in exc.errors()]
    where = "query parameters" if all(
        e.get("loc", ("",))[0] in ("query", "path") for e in exc.errors()) else "request"
    return validation_error(details, f"Invalid {where}").response()


async def _telemetry_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return validation_error([from_validation(exc)], "Invalid request").response()


async def _store_error(request: Request, exc: Exception) -> Response:
    logger.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return ApiError(503, "Service Unavailable", "the telemetry store is unavailable",
                    headers={"Retry-After": "5"}).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged with its traceback on the server; the client gets the shape and no stack trace.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response(error_body("Internal Server Error", "the server failed to answer this request"),
                         500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the seed 001 shape."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _telemetry_validation)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(RecursionError, _request_validation_recursion)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)


async def _request_validation_recursion(request: Request, exc: Exception) -> Response:
    return validation_error([{"field": "body", "message": "nested too deeply"}], "Invalid body").response()


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client left before sending its whole body: nobody reads this answer, nothing was stored.
    return json_response(error_body("Bad Request", "the client disconnected before sending the body"), 400)
