"""The "otlp" exporter: follows the store and sends each session as a trace when it ends.

A session's trace is read back from the primary store when its end event passes the exporter's
cursor, so nothing is held in memory across a crash: the persisted cursor and the store are the
state. A session still open `partial_after_s` after its first event has its finished part (stream
chunks and custom events, as child spans) sent early; the root span follows at the end.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

from ..errors import ValidationError
from ..events import TelemetryEvent
from ..exporters.base import DEFAULT_BATCH_SIZE
from ..registry import check_options
from .encode import EncodeOptions, encode_traces
from .semconv import root_span_id, trace_id
from .settings import Target, resolve_target

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

log = logging.getLogger(__name__)
OPTIONS: Final = frozenset({"endpoint", "headers", "protocol", "compression", "timeout_s", "batch_size", "name",
                            "resource_attributes", "service_name", "stream_as", "partial_after_s"})
MAX_OPEN_SESSIONS: Final = 100_000  # open sessions remembered for partial export; the oldest are forgotten


class OtlpExporter:
    """Sessions as OTLP traces to a collector (http/protobuf, http/json or gRPC; gzip)."""

    def __init__(self, target: Target, *, encode: EncodeOptions | None = None, name: str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, partial_after_s: float = 300.0) -> None:
        from .transport import Sender

        self.target = target
        self.encode = encode or EncodeOptions()
        self.batch_size = batch_size
        self.partial_after_s = partial_after_s
        self.name = name or f"otlp:{target.endpoint}"
        self.sender = Sender(target)
        self.store: Any = None
        self.rejected_spans = 0  # spans the collector refused in partial successes
        self.sessions_sent = 0
        self._open: OrderedDict[str, float] = OrderedDict()  # session -> monotonic time first seen
        self._sent: dict[str, set[str]] = {}  # session -> event ids already sent as child spans
        self._buffer: dict[str, dict[str, TelemetryEvent]] = {}  # sessions' events when no store can be read

    def bind_store(self, store: Any) -> None:
        """Read sessions back from this store (ExporterSet calls it); without one, sessions are buffered."""
        self.store = store if callable(getattr(store, "query", None)) else None

    def export(self, events: list[TelemetryEvent]) -> None:
        """Send the traces of sessions that ended in this batch (and finished parts of old open ones)."""
        now = time.monotonic()
        lone = [e for e in events if not e.session_id]
        ended: dict[str, None] = {}
        for event in events:
            sid = event.session_id
            if not sid:
                continue
            if self.store is None:  # keyed by id: a batch retried after a failure is not buffered twice
                self._buffer.setdefault(sid, {})[event.event_id or ""] = event
            if event.event_type == "end":
                ended[sid] = None
            elif sid not in self._open:
                self._open[sid] = now
        early: dict[str, list[str]] = {}  # event ids sent early, remembered only once the send succeeded
        request = self._request(lone, list(ended), now, early)
        if request.resource_spans:
            rejected, message = self.sender.send(request)
            if rejected:
                self.rejected_spans += rejected
                log.warning("%s: the collector rejected %d spans: %s", self.name, rejected, message)
        for sid, ids in early.items():
            if ids:
                self._sent.setdefault(sid, set()).update(ids)
        self.sessions_sent += len(ended)
        for sid in ended:
            self._forget(sid)
        while len(self._open) > MAX_OPEN_SESSIONS:
            self._forget(next(iter(self._open)))

    def _request(self, lone: list[TelemetryEvent], ended: list[str], now: float,
                 early: dict[str, list[str]]) -> ExportTraceServiceRequest:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        if lone:
            request.resource_spans.extend(encode_traces(lone, self.encode).resource_spans)
        partial = [sid for sid, first_seen in self._open.items()
                   if sid not in ended and now - first_seen >= self.partial_after_s]
        # One read for every session this batch needs, not one per session.
        stored = self._sessions_events([*ended, *partial])
        for sid in ended:
            session = stored.get(sid, [])
            sent = self._sent.get(sid)
            if sent is not None:
                # Part of it went out early as child spans: the rest the same way, under the root span now.
                session = [e for e in session if e.event_id not in sent]
                options = EncodeOptions("spans", self.encode.resource_attributes, self.encode.service_name)
            else:
                options = self.encode
            if session:
                request.resource_spans.extend(encode_traces(session, options).resource_spans)
        for sid in partial:
            early[sid] = self._add_partial(request, sid, stored.get(sid, []))
        return request

    def _add_partial(self, request: ExportTraceServiceRequest, sid: str, events: list[TelemetryEvent]) -> list[str]:
        """Add the finished part of an open session (stream and custom events as child spans, no root)."""
        sent = self._sent.get(sid, set())
        fresh = [e for e in events if e.event_type in ("stream", "custom") and e.event_id not in sent]
        if not fresh:
            return []
        options = EncodeOptions("spans", self.encode.resource_attributes, self.encode.service_name)
        part = encode_traces(fresh, options)
        root = root_span_id(sid)
        for resource_spans in part.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                children = [s for s in scope_spans.spans if s.span_id != root]
                del scope_spans.spans[:]
                scope_spans.spans.extend(children)
        request.resource_spans.extend(part.resource_spans)
        return [e.event_id or "" for e in fresh]

    def _sessions_events(self, sids: list[str]) -> dict[str, list[TelemetryEvent]]:
        """Each session's events in order: read back from the store, or from the buffer without one."""
        if not sids:
            return {}
        if self.store is None:
            return {sid: sorted(self._buffer.get(sid, {}).values(), key=lambda e: e.timestamp) for sid in sids}
        from ..query import QueryFilter

        out: dict[str, list[TelemetryEvent]] = {sid: [] for sid in sids}
        for event in self.store.query(QueryFilter(session_ids=list(sids))):
            out[event.session_id or ""].append(event)
        return out

    def _forget(self, sid: str) -> None:
        self._open.pop(sid, None)
        self._sent.pop(sid, None)
        self._buffer.pop(sid, None)

    def shutdown(self) -> None:
        """Close the gRPC channel, if any."""
        self.sender.close()


def session_trace_id(session_id: str) -> str:
    """The hex trace id a session is exported under (to find it in Jaeger, Tempo ...)."""
    return trace_id(session_id).hex()


def build_otlp(options: dict[str, Any], field: str) -> OtlpExporter:
    """Registry factory for `{"type": "otlp", "options": {"endpoint": ..., "protocol": ..., ...}}`."""
    check_options(options, OPTIONS, field)
    target = resolve_target(options, field)
    batch_size = options.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"{field}.batch_size", "an integer >= 1", batch_size)
    stream_as = options.get("stream_as", "events")
    if stream_as not in ("events", "spans"):
        raise ValidationError(f"{field}.stream_as", "'events' (span events) or 'spans' (child spans)", stream_as)
    resource = options.get("resource_attributes", {})
    if not isinstance(resource, dict) or not all(isinstance(k, str) and isinstance(v, str | bool | int | float)
                                                 for k, v in resource.items()):
        raise ValidationError(f"{field}.resource_attributes", "a table of names to strings, numbers or booleans",
                              resource)
    service = options.get("service_name")
    if service is not None and (not isinstance(service, str) or not service):
        raise ValidationError(f"{field}.service_name", "a non-empty string", service)
    partial = options.get("partial_after_s", 300.0)
    if isinstance(partial, bool) or not isinstance(partial, int | float) or not partial > 0:
        raise ValidationError(f"{field}.partial_after_s", "a number of seconds > 0", partial)
    name = options.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValidationError(f"{field}.name", "a non-empty string", name)
    return OtlpExporter(target, encode=EncodeOptions(stream_as, dict(resource), service), name=name,
                        batch_size=batch_size, partial_after_s=float(partial))


build_otlp.kind = "exporter"  # type: ignore[attr-defined]
