"""The gRPC streaming service (extra `grpc`): subscribe to live events, ingest batches over a client stream.

The messages and the service come from the shipped `telemetry_stream.proto`, loaded at run time
(grpc.protos_and_services, which needs grpcio-tools), so the .proto is the only definition. Auth uses
the API server's keys (`x-api-key` or `authorization: Bearer` metadata): `read` to subscribe,
`ingest` to ingest. Ingested events take the same path as POST /api/events: the chain on the
request's thread, then the durable commit before the answer.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from .broadcast import ALL, Broadcast
from .events import EventStream

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from ..server.tls import TlsPair
    from ..service import Telemetry

PROTO: Final = os.path.join(os.path.dirname(__file__), "telemetry_stream.proto")
COMMIT_TIMEOUT_S: Final = 30.0
_FIELDS: Final = ("category", "session_id", "action", "label", "value", "stream_data", "duration", "event_id",
                  "sandbox_id", "repo_url", "service_name", "service_version")
_loaded: tuple[Any, Any] | None = None
_load_lock = threading.Lock()


def load_proto() -> tuple[Any, Any]:
    """(messages module, services module) of telemetry_stream.proto, compiled once per process."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            try:
                import grpc
            except ImportError as exc:  # pragma: no cover - the extra is part of dev
                raise ValidationError("grpc", "the `grpc` extra installed (pip install "
                                      "'vibekit-telemetry[grpc]')", str(exc)) from None
            # protos_and_services resolves the file against sys.path: put this directory there for the call.
            import sys

            here = os.path.dirname(PROTO)
            sys.path.insert(0, here)
            try:
                _loaded = grpc.protos_and_services(os.path.basename(PROTO))  # type: ignore[no-untyped-call]
            finally:
                sys.path.remove(here)
    return _loaded


def event_to_message(event: TelemetryEvent, messages: Any) -> Any:
    """The Event message of a stored event."""
    message = messages.Event(event_type=event.event_type, timestamp=event.timestamp)
    for name in _FIELDS:
        value = getattr(event, name)
        if value is not None:
            setattr(message, name, value)
    metadata = event.metadata_json if event.metadata_json is not None else (
        json.dumps(event.metadata) if event.metadata else None)
    if metadata is not None:
        message.metadata_json = metadata
    context = event.context_json if event.context_json is not None else (
        json.dumps(event.context) if event.context else None)
    if context is not None:
        message.context_json = context
    return message


def message_to_dict(message: Any, field: str) -> dict[str, Any]:
    """The raw event dict of an Event message (the chain validates it); bad JSON names its field."""
    raw: dict[str, Any] = {"event_type": message.event_type}
    if message.timestamp:
        raw["timestamp"] = message.timestamp
    for name in _FIELDS:
        if message.HasField(name):
            raw[name] = getattr(message, name)
    for name in ("metadata", "context"):
        if message.HasField(f"{name}_json"):
            try:
                raw[name] = json.loads(getattr(message, f"{name}_json"))
            except ValueError:
                raise ValidationError(f"{field}.{name}_json", "JSON text of an object",
                                      getattr(message, f"{name}_json")) from None
    return raw


class GrpcStreamServer:
    """The TelemetryStream service on host:port over a Telemetry; start() and stop().

    With `tls` (server.tls.load_tls_pair) it serves over TLS only; a plaintext client fails.
    """

    def __init__(self, telemetry: Telemetry, port: int = 50051, host: str = "127.0.0.1", *,
                 settings: ServerSettings | None = None, workers: int = 8, tls: TlsPair | None = None) -> None:
        from ..server.auth import Authenticator
        from ..server.grpc_listen import listen_grpc
        from ..server.settings import ServerSettings

        self.telemetry = telemetry
        self.settings = settings or ServerSettings.resolve(telemetry.config.api)
        self.auth = Authenticator(self.settings)
        self.messages, services = load_proto()
        self._stopping = threading.Event()
        self._server, self.port = listen_grpc(host, port, self.settings, workers, "gRPC", tls)
        services.add_TelemetryStreamServicer_to_server(_Servicer(self), self._server)
        self.tls = tls
        self.host = host

    @property
    def target(self) -> str:
        """What a gRPC client connects to (host:port)."""
        return f"{self.host}:{self.port}"

    def start(self) -> GrpcStreamServer:
        """Start serving (returns at once)."""
        self._server.start()
        return self

    def stop(self, grace_s: float = 2.0) -> None:
        """End subscriptions, stop accepting, let calls in flight finish for up to grace_s."""
        self._stopping.set()
        self._server.stop(grace_s).wait(grace_s + 1)


class _Servicer:
    """Subscribe and Ingest (a duck-typed servicer: grpc calls the methods by name)."""

    def __init__(self, owner: GrpcStreamServer) -> None:
        self.owner = owner

    def _admit(self, context: Any, scope: str) -> None:
        import grpc

        from ..server.errors import ApiError

        try:
            self.owner.auth.check({k.lower(): v for k, v in context.invocation_metadata()}, scope)
        except ApiError as exc:
            code = grpc.StatusCode.UNAUTHENTICATED if exc.status_code == 401 else grpc.StatusCode.PERMISSION_DENIED
            context.abort(code, exc.message)

    def Subscribe(self, request: Any, context: Any) -> Iterator[Any]:  # the gRPC method's name
        """Stream committed events matching the request until the client or the server ends it."""
        for item in self._live(request, context, with_broadcasts=False):
            yield event_to_message(item, self.owner.messages)

    def Listen(self, request: Any, context: Any) -> Iterator[Any]:  # the gRPC method's name
        """Stream committed events and the broadcasts of the request's channels, as StreamMessage."""
        messages = self.owner.messages
        for item in self._live(request, context, with_broadcasts=True):
            if isinstance(item, Broadcast):
                yield messages.StreamMessage(broadcast=messages.Broadcast(
                    channel=item.channel, data_json=item.data_json, timestamp=item.timestamp))
            else:
                yield messages.StreamMessage(event=event_to_message(item, messages))

    def _live(self, request: Any, context: Any, *, with_broadcasts: bool) -> Iterator[Any]:
        import grpc

        self._admit(context, "read")
        spec = {key: list(values) for key, values in (("session_ids", request.session_ids),
                                                      ("categories", request.categories),
                                                      ("event_types", request.event_types)) if values}
        channels: list[str] | None = None
        if with_broadcasts:  # the rooms a WebSocket client with these filters would be in, plus its own
            channels = [f"session:{s}" for s in request.session_ids] + \
                [f"category:{c}" for c in request.categories] + list(request.channels)
            if not request.session_ids and not request.categories:
                channels.append(ALL)
        telemetry = self.owner.telemetry
        try:
            stream = EventStream(telemetry, spec, channels=channels)  # on/off: the emitter's
        except ValidationError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            while context.is_active() and not self.owner._stopping.is_set():
                item = stream.get_message(timeout=0.25)  # wake up now and then to notice a gone client
                if item is not None:
                    yield item
        finally:
            stream.close()

    def Ingest(self, request_iterator: Iterable[Any], context: Any) -> Any:
        """Run each batch through the chain and wait for its durable commit; answer the counts."""
        import grpc

        self._admit(context, "ingest")
        runtime = self.owner.telemetry.runtime
        if runtime is None:
            return context.abort(grpc.StatusCode.UNAVAILABLE, "tracking is disabled on this server")
        accepted = batches = 0
        for batch in request_iterator:
            try:
                raw = [message_to_dict(m, f"batches[{batches}].events[{i}]") for i, m in enumerate(batch.events)]
                events = runtime.process_now(raw) if raw else []
            except ValidationError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"batches[{batches}]: {exc} (earlier batches are committed)")
            if events:
                done = threading.Event()

                def committed(_ticket: Any, done: threading.Event = done) -> None:
                    done.set()

                ticket = runtime.submit_processed(events, urgent=True, on_done=committed)
                if ticket is None or not done.wait(COMMIT_TIMEOUT_S) or not ticket.committed:
                    context.abort(grpc.StatusCode.UNAVAILABLE,
                                  f"batches[{batches}]: the store did not commit it; retry from this batch")
            accepted += len(events)
            batches += 1
        return self.owner.messages.IngestReply(accepted=accepted, batches=batches)


class GrpcStreamClient:
    """A small client for the TelemetryStream service (what the tests and docs use).

    `root_certificates` (PEM bytes) connects over TLS trusting those roots; `server_name` overrides the
    name checked against the certificate (a certificate made for another host name).
    """

    def __init__(self, target: str, *, api_key: str | None = None, root_certificates: bytes | None = None,
                 server_name: str | None = None) -> None:
        import grpc

        self.messages, services = load_proto()
        if root_certificates is not None:  # TLS, trusting these PEM roots (a self-signed server's certificate)
            options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = services.TelemetryStreamStub(self._channel)
        self._metadata = [("x-api-key", api_key)] if api_key else []

    def subscribe(self, *, session_ids: Iterable[str] = (), categories: Iterable[str] = (),
                  event_types: Iterable[str] = ()) -> Any:
        """A live call yielding Event messages; call .cancel() on it to stop."""
        request = self.messages.SubscribeRequest(session_ids=list(session_ids), categories=list(categories),
                                                 event_types=list(event_types))
        return self._stub.Subscribe(request, metadata=self._metadata)

    def listen(self, *, session_ids: Iterable[str] = (), categories: Iterable[str] = (),
               event_types: Iterable[str] = (), channels: Iterable[str] = ()) -> Any:
        """A live call yielding StreamMessage (an event or a broadcast); call .cancel() on it to stop."""
        request = self.messages.SubscribeRequest(session_ids=list(session_ids), categories=list(categories),
                                                 event_types=list(event_types), channels=list(channels))
        return self._stub.Listen(request, metadata=self._metadata)

    def ingest(self, batches: Iterable[Iterable[Mapping[str, Any]]], timeout: float = 60.0) -> Any:
        """Send batches of event dicts over one client stream; return the IngestReply."""
        def requests() -> Iterator[Any]:
            for batch in batches:
                yield self.messages.EventBatch(events=[self._message(e) for e in batch])

        return self._stub.Ingest(requests(), metadata=self._metadata, timeout=timeout)

    def _message(self, event: Mapping[str, Any]) -> Any:
        fields = {k: v for k, v in event.items() if k not in ("metadata", "context")}
        for name in ("metadata", "context"):
            if event.get(name) is not None:
                fields[f"{name}_json"] = json.dumps(event[name])
        return self.messages.Event(**fields)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
