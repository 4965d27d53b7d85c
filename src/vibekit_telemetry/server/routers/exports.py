"""/api/exports: export events to a file on the server, confined to the configured export directory."""

from __future__ import annotations

import os
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...errors import ValidationError
from ..auth import Principal, require
from ..body import loads
from ..errors import json_response, validation_error
from ._common import audit, check_params, get_telemetry
from .events import ERRORS

router = APIRouter(tags=["exports"])

_FIELDS: Final = ("format", "output_path", "filter", "compression", "pretty", "delimiter", "header", "tables")
_BODY: Final = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["format", "output_path"], "additionalProperties": False,
    "properties": {"format": {"enum": ["json", "ndjson", "csv", "parquet", "otlp"]},
                   "output_path": {"type": "string", "description": "a file name inside the export directory"},
                   "filter": {"type": "object"}, "compression": {"type": "string"}, "pretty": {"type": "boolean"},
                   "delimiter": {"type": "string"}, "header": {"type": "boolean"},
                   "tables": {"type": "array", "items": {"enum": ["events", "sessions"]}}}}}}}}


def _options(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise validation_error([{"field": "body", "message": "expected a JSON object"}], "Invalid body")
    unknown = [k for k in document if k not in _FIELDS]
    if unknown:
        raise validation_error([{"field": k, "message": "unknown field; known: " + ", ".join(_FIELDS)}
                                for k in unknown], "Invalid body")
    for name in ("format", "output_path"):
        if name not in document:
            raise validation_error([{"field": name, "message": "required"}], "Invalid body")
    for name in ("pretty", "header"):
        if name in document and not isinstance(document[name], bool):
            raise ValidationError(name, "true or false", document[name])
    if "filter" in document and not isinstance(document["filter"], dict):
        raise ValidationError("filter", "an object of query filters", document["filter"])
    return dict(document)


@router.post("/api/exports", operation_id="createExport", summary="Export events to a file on the server",
             openapi_extra=_BODY, responses=ERRORS)
async def create_export(request: Request, principal: Annotated[Principal, Depends(require("admin"))]) -> Response:
    """Write an export into the server's export directory (`..`, absolute paths and symlinks out refused)."""
    from ...export.exports import export_events
    from ...export.output import confine

    check_params(request, ())
    options = _options(loads(await request.body(), request.app.state.settings.max_json_depth))
    telemetry = get_telemetry(request)
    root = telemetry.config.exports.export_dir
    os.makedirs(root, exist_ok=True)
    path = confine(options.pop("output_path"), root)
    fmt = options.pop("format")
    audit(request, principal, "export", os.path.relpath(path, root), {"format": fmt})
    result = await run_in_threadpool(lambda: export_events(telemetry.store, fmt, output_path=path, **options))
    body = result.to_dict()
    body["path"] = os.path.relpath(result.path, os.path.realpath(root))
    body["files"] = {t: [os.path.relpath(p, os.path.realpath(root)), n] for t, (p, n) in result.files.items()}
    return json_response(body)
