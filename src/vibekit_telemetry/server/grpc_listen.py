"""The gRPC servers beside the HTTP API (OTLP/gRPC receiver, TelemetryStream) are bound the same way."""

from __future__ import annotations

from concurrent import futures
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import ServerSettings


def listen_grpc(host: str, port: int, settings: ServerSettings, workers: int, what: str) -> tuple[Any, int]:
    """A grpc.Server on host:port (0: any free port) and the port it got; OSError naming `what` if taken.

    Messages up to the API's body limit are accepted. No SO_REUSEPORT: a second server on a taken port
    must fail, not share it. Services are added by the caller before start().
    """
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=[("grpc.max_receive_message_length", settings.max_body_bytes),
                                  ("grpc.so_reuseport", 0)])
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for {what} on {host}:{port}")
    return server, int(bound)
