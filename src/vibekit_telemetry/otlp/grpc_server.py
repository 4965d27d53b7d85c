"""OTLP/gRPC receiver (`telemetry api --otlp-grpc`): the same mapping, chain and durable answer as POST /v1/traces.

Auth uses the API server's keys: `x-api-key` or `authorization: Bearer ...` metadata, `ingest` scope.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from .receive import receive

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from ..server.tls import TlsPair
    from ..service import Telemetry

DEFAULT_PORT: Final = 4317
COMMIT_TIMEOUT_S: Final = 30.0


class OtlpGrpcServer:
    """A gRPC TraceService on host:port feeding a Telemetry's runtime; `stop()` ends it.

    With `tls` (server.tls.load_tls_pair) it serves over TLS only; a plaintext client fails.
    """

    def __init__(self, telemetry: Telemetry, port: int = DEFAULT_PORT, host: str = "127.0.0.1", *,
                 settings: ServerSettings | None = None, workers: int = 4, tls: TlsPair | None = None) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        from ..server.auth import Authenticator
        from ..server.grpc_listen import listen_grpc
        from ..server.settings import ServerSettings

        self.telemetry = telemetry
        self.settings = settings or ServerSettings.resolve(telemetry.config.api)
        self.auth = Authenticator(self.settings)
        self._server, self.port = listen_grpc(host, port, self.settings, workers, "OTLP/gRPC", tls)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Servicer(self), self._server)
        self.tls = tls
        self.host = host

    @property
    def endpoint(self) -> str:
        """The URL an OTLP gRPC exporter is given (https:// when served over TLS)."""
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self.port}"

    def start(self) -> OtlpGrpcServer:
        """Start serving (returns at once)."""
        self._server.start()
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting and let calls in flight finish for up to grace_s."""
        self._server.stop(grace_s).wait(grace_s + 1)


class _Servicer:
    """TraceService.Export over the runtime (a duck-typed servicer: grpc only calls Export)."""

    def __init__(self, owner: OtlpGrpcServer) -> None:
        self.owner = owner

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's name
        """Decode, run the chain, wait for the durable commit, answer with the partial success."""
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        from ..server.errors import ApiError

        owner = self.owner
        try:
            owner.auth.check({k.lower(): v for k, v in context.invocation_metadata()}, "ingest")
        except ApiError as exc:
            code = grpc.StatusCode.UNAUTHENTICATED if exc.status_code == 401 else grpc.StatusCode.PERMISSION_DENIED
            context.abort(code, exc.message)
        runtime = owner.telemetry.runtime
        if runtime is None:
            return context.abort(grpc.StatusCode.UNAVAILABLE, "tracking is disabled on this server")
        received = receive(runtime, request)
        if received.events:
            done = threading.Event()
            ticket = runtime.submit_processed(received.events, urgent=True, on_done=lambda _t: done.set())
            if ticket is None:
                return context.abort(grpc.StatusCode.UNAVAILABLE, "the ingest queue is full; retry")
            if not done.wait(COMMIT_TIMEOUT_S) or not ticket.committed:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the store did not commit the batch; retry")
        answer = ExportTraceServiceResponse()
        if received.rejected_spans:
            answer.partial_success.rejected_spans = received.rejected_spans
            answer.partial_success.error_message = received.error_message
        return answer
