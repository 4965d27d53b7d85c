"""Sending one ExportTraceServiceRequest: OTLP/HTTP (protobuf or JSON, gzip) or OTLP/gRPC.

Outcomes follow the OTLP spec's retry rules: retryable answers raise OtlpRetryError (the exporter
worker backs off and retries), a refusal raises PoisonBatchError (skipped, counted), and a partial
success returns the rejected count with the server's message.
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any, Final

from ..exporters.base import PoisonBatchError
from ..exporters.http import post_batch
from .encode import request_to_json
from .settings import Target

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

# The OTLP/HTTP spec's retryable statuses; any other 4xx means the request itself is refused.
RETRYABLE_HTTP: Final = frozenset({408, 429, 502, 503, 504})
RETRYABLE_GRPC: Final = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                                   "DATA_LOSS", "RESOURCE_EXHAUSTED", "UNKNOWN", "INTERNAL"})


class OtlpRetryError(Exception):
    """The collector could not take the request now: retried with backoff, behind the circuit breaker."""


class Sender:
    """Sends requests to one target; keeps the gRPC channel open between calls."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._channel: Any = None
        self._stub: Any = None

    def send(self, request: ExportTraceServiceRequest) -> tuple[int, str]:
        """Deliver one request; return (rejected spans, message) from a partial success, raise otherwise."""
        if self.target.protocol == "grpc":
            return self._send_grpc(request)
        return self._send_http(request)

    def _send_http(self, request: ExportTraceServiceRequest) -> tuple[int, str]:
        target = self.target
        as_json = target.protocol == "http/json"
        body = json.dumps(request_to_json(request)).encode() if as_json else request.SerializeToString()
        headers = {"Content-Type": "application/json" if as_json else "application/x-protobuf",
                   "User-Agent": "vibekit-telemetry-otlp", **target.headers}
        if target.gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        answer = post_batch(target.endpoint, body, headers, target.timeout_s, retry_error=OtlpRetryError,
                            refused=lambda status: 400 <= status < 500 and status not in RETRYABLE_HTTP)
        return _partial(answer.body, answer.content_type)

    def _send_grpc(self, request: ExportTraceServiceRequest) -> tuple[int, str]:
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        target = self.target
        if self._stub is None:
            from urllib.parse import urlsplit

            parts = urlsplit(target.endpoint)
            address = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 4317)}"
            self._channel = (grpc.secure_channel(address, grpc.ssl_channel_credentials())
                             if parts.scheme == "https" else grpc.insecure_channel(address))
            self._stub = TraceServiceStub(self._channel)  # type: ignore[no-untyped-call]
        metadata = [(k.lower(), v) for k, v in target.headers.items()]
        try:
            answer = self._stub.Export(request, metadata=metadata, timeout=target.timeout_s,
                                       compression=grpc.Compression.Gzip if target.gzip else None)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            message = f"{target.endpoint}: gRPC {code}: {exc.details() if hasattr(exc, 'details') else exc}"
            if code in RETRYABLE_GRPC:
                raise OtlpRetryError(message) from None
            raise PoisonBatchError(message) from None
        return answer.partial_success.rejected_spans, answer.partial_success.error_message

    def close(self) -> None:
        """Close the gRPC channel, if one was opened."""
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None


def _partial(answer: bytes, kind: str) -> tuple[int, str]:
    """The partial success of an OTLP/HTTP answer (an empty answer is full success)."""
    if not answer:
        return 0, ""
    try:
        if "json" in kind:
            partial = json.loads(answer).get("partialSuccess") or {}
            return int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        response.ParseFromString(answer)
        return response.partial_success.rejected_spans, response.partial_success.error_message
    except Exception:  # the request was taken (2xx); an odd answer body changes nothing
        return 0, ""

