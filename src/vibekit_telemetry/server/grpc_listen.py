"""The gRPC servers beside the HTTP API (OTLP/gRPC receiver, TelemetryStream) are bound the same way."""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import ServerSettings
    from .tls import TlsPair


def listen_grpc(host: str, port: int, settings: ServerSettings, workers: int, what: str,
                tls: TlsPair | None = None) -> tuple[Any, int]:
    """A grpc.Server on host:port (0: any free port) and the port it got; OSError naming `what` if taken.

    With `tls` (tls.load_tls_pair) the port serves TLS only: a plaintext client fails.

    Messages up to the API's body limit are accepted. No SO_REUSEPORT: a second server on a taken port
    must fail, not share it. Services are added by the caller before start().
    """
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", settings.max_body_bytes),
                                  ("grpc.so_reuseport", 0)])
    address = f"{host}:{port}"
    bound = (server.add_secure_port(address, tls.server_credentials()) if tls is not None
             else server.add_insecure_port(address))
    if bound == 0:
        raise OSError(f"cannot listen for {what} on {host}:{port}")
    return server, int(bound)
