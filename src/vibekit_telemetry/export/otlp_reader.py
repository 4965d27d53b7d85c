"""Reading OTLP trace files back into event records: OTLP/JSON (as `export --format otlp` writes) or protobuf.

The spans go through the same decoder as the OTLP receiver (otlp/decode.py): spans our exporter wrote
give back the exact events (vibekit.* attributes), any other span is mapped by the GenAI conventions.
A trace document is one message, so the file is read whole (as the export wrote it whole).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..errors import ValidationError
from .readers import BadRecord, ImportFileError, Record, open_decompressed

# An OTLP file larger than this is refused rather than read into memory at once.
MAX_OTLP_BYTES = 1 << 30


def _request(path: str) -> Any:
    """The ExportTraceServiceRequest of the file: JSON when it starts with `{`, protobuf otherwise."""
    try:
        from ..otlp.decode import OtlpDecodeError, parse_json, parse_protobuf
    except ImportError:  # pragma: no cover - the otlp package ships with the library
        raise ValidationError("format", "the OTLP decoder (vibekit_telemetry.otlp)", "otlp") from None
    try:
        with open_decompressed(path) as stream:
            body = stream.read(MAX_OTLP_BYTES + 1)
    except (EOFError, OSError) as exc:
        raise ImportFileError(path, "reading", f"the file is truncated or its compression is corrupt "
                              f"({type(exc).__name__}: {exc})") from None
    if len(body) > MAX_OTLP_BYTES:
        raise ImportFileError(path, "file", f"an OTLP file of at most {MAX_OTLP_BYTES:,} bytes (split the export "
                              "by sessions or time)")
    try:
        if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            try:
                document = json.loads(body)
            except ValueError as exc:
                line = getattr(exc, "lineno", None)
                raise ImportFileError(path, f"line {line}" if line else "document",
                                      f"not valid JSON, truncated or corrupt ({exc})") from None
            if not isinstance(document, dict) or "resourceSpans" not in document:
                raise ImportFileError(path, "document", "an OTLP/JSON traces document (an object with "
                                      "resourceSpans)")
            return parse_json(document)
        return parse_protobuf(body)
    except ImportError as exc:
        raise ValidationError("format", "the `otlp` extra to read OTLP (pip install 'vibekit-telemetry[otlp]')",
                              str(exc)) from None
    except OtlpDecodeError as exc:
        raise ImportFileError(path, "document", str(exc)) from None


def read_otlp(path: str) -> Iterator[Record]:
    """Yield (place, record) for every event the file's spans describe; a span that cannot be read is a BadRecord."""
    from ..otlp.decode import attributes, decode_span

    request = _request(path)
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for p, span in enumerate(scope_spans.spans):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{p}]"
                decoded = decode_span(span, resource)
                if decoded.error:
                    yield where, BadRecord(decoded.error)
                    continue
                for e, event in enumerate(decoded.events):
                    yield f"{where} event {e}", event
