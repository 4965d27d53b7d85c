"""A minimal OTLP/HTTP capture server that decodes with opentelemetry-proto, independent of our decoder."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import ParseDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hex_to_b64(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId")
                    else _hex_to_b64(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_to_b64(v) for v in node]
    return node


class Capture:
    """Collects every ExportTraceServiceRequest POSTed to http://127.0.0.1:<port>/v1/traces."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Capture:
        """Listen (again, on the same port)."""
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                if self.headers.get("Content-Type") == "application/json":
                    ParseDict(_hex_to_b64(json.loads(body)), request)
                else:
                    request.ParseFromString(body)
                with capture._lock:
                    status = capture.status
                    if status == 200 and self.path == "/v1/traces":
                        capture.requests.append(request)
                        capture.headers.append(dict(self.headers))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: the port refuses connections, like a collector that is down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span received, with its resource attributes."""
        out = []
        with self._lock:
            requests = list(self.requests)
        for request in requests:
            for rs in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    out.extend((resource, span) for span in ss.spans)
        return out


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def attrs(items: Any) -> dict[str, Any]:
    """OTLP attributes as a dict."""
    return {kv.key: _value(kv.value) for kv in items}
