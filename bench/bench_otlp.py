"""OTLP both ways: spans/s received over OTLP/HTTP protobuf, and sessions/s exported by the otlp exporter.

receive: a fresh Telemetry on a new SQLite file served by `start_api_server` in this process; a load
thread sends pre-encoded ExportTraceServiceRequests (REQUEST_SPANS spans each, what the SDK's batch
processor sends: per trace one root agent span and LLM child spans with GenAI attributes) over one
keep-alive loopback connection. Every answer comes after the commit, so the clock stops when every
span is stored. Peer in the same run: the same events as JSON batches to POST /api/events.

export: a SQLite store holding SESSIONS sessions (a start, 20 stream chunks, an end), the otlp
exporter (http/protobuf, gzip) following it from the beginning to a loopback capture server that
counts spans; timed until the exporter's lag is 0. Peer in the same run: the webhook exporter over
the same store to a loopback server.

    python bench/bench_otlp.py                       # 20,000 spans received, 2,000 sessions exported
    python bench/bench_otlp.py --spans 5000 --sessions 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _util import emit, machine, ratio

REQUEST_SPANS = 512
CHILDREN = 7  # per trace: one root and 7 LLM calls


def otlp_requests(total: int) -> tuple[list[bytes], list[bytes], int]:
    """Pre-encoded OTLP protobuf requests, the equivalent /api/events JSON batches, and the event count."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    from vibekit_telemetry.otlp.decode import decode_request

    def kv(key: str, value: Any) -> KeyValue:
        v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
        return KeyValue(key=key, value=v)

    now_ns = time.time_ns()
    spans: list[Span] = []
    trace = 0
    while len(spans) < total:
        trace += 1
        tid = os.urandom(16)
        root_id = os.urandom(8)
        start = now_ns + trace * 10_000_000
        spans.append(Span(trace_id=tid, span_id=root_id, name="invoke_agent bench", start_time_unix_nano=start,
                          end_time_unix_nano=start + 9_000_000,
                          attributes=[kv("gen_ai.operation.name", "invoke_agent"), kv("gen_ai.system", "openai")]))
        for i in range(CHILDREN):
            spans.append(Span(trace_id=tid, span_id=os.urandom(8), parent_span_id=root_id, name="chat gpt-4o",
                              start_time_unix_nano=start + i * 1_000_000,
                              end_time_unix_nano=start + i * 1_000_000 + 900_000,
                              attributes=[kv("gen_ai.operation.name", "chat"), kv("gen_ai.system", "openai"),
                                          kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 120),
                                          kv("gen_ai.usage.output_tokens", 40),
                                          kv("gen_ai.prompt.0.content", "x" * 200),
                                          kv("gen_ai.completion.0.content", "y" * 200)]))
    spans = spans[:total]
    bodies, batches, events = [], [], 0
    for first in range(0, len(spans), REQUEST_SPANS):
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
            resource={"attributes": [kv("service.name", "bench-agent")]},
            scope_spans=[ScopeSpans(spans=spans[first:first + REQUEST_SPANS])])])
        bodies.append(request.SerializeToString())
        raw = [e for decoded in decode_request(request) for e in decoded.events]
        events += len(raw)
        batches.append(json.dumps({"events": raw}).encode())
    return bodies, batches, events


def _post_all(port: int, path: str, bodies: list[bytes], content_type: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    began = time.perf_counter()
    for body in bodies:
        connection.request("POST", path, body, {"Content-Type": content_type})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{path} answered {answer.status}")
    elapsed = time.perf_counter() - began
    connection.close()
    return elapsed


def bench_receive(total: int, workdir: Path) -> dict[str, Any]:
    """spans/s over POST /v1/traces, and the same events/s over POST /api/events."""
    from vibekit_telemetry import Telemetry
    from vibekit_telemetry.server import start_api_server

    bodies, batches, events = otlp_requests(total)
    out: dict[str, Any] = {"spans": total, "events": events, "requests": len(bodies)}
    for name, path, payload, kind in (("otlp", "/v1/traces", bodies, "application/x-protobuf"),
                                      ("api_events", "/api/events", batches, "application/json")):
        telemetry = Telemetry(db_path=str(workdir / f"receive-{name}.db"))
        server = start_api_server(telemetry, port=0, rate_limit="off")
        try:
            elapsed = _post_all(server.port, path, payload, kind)
        finally:
            server.stop()
            telemetry.shutdown()
        out[name] = {"seconds": elapsed, "events_per_s": events / elapsed}
    out["otlp"]["spans_per_s"] = total / out["otlp"]["seconds"]
    out["otlp_vs_api_events"] = ratio(out["otlp"]["events_per_s"], out["api_events"]["events_per_s"])
    return out


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def bench_export(sessions: int, workdir: Path) -> dict[str, Any]:
    """sessions/s through the otlp exporter, and through the webhook exporter over the same store."""
    from vibekit_telemetry.events import TelemetryEvent
    from vibekit_telemetry.exporters import ExporterSet
    from vibekit_telemetry.exporters.manager import DeliveryOptions
    from vibekit_telemetry.exporters.webhook import build_webhook
    from vibekit_telemetry.otlp.exporter import build_otlp
    from vibekit_telemetry.store.sql import SQLStore

    store = SQLStore(f"sqlite:///{workdir / 'export.db'}")
    store.initialize()
    ts = int(time.time() * 1000)
    batch: list[TelemetryEvent] = []
    for s in range(sessions):
        sid = f"s-{s}"
        batch.append(TelemetryEvent("start", "claude", sid, "chat", "task", timestamp=ts, event_id=f"{sid}-a",
                                    metadata={"model": "claude-sonnet-4"}))
        batch.extend(TelemetryEvent("stream", "claude", sid, stream_data="z" * 80, timestamp=ts + i,
                                    event_id=f"{sid}-{i}", metadata={"output_tokens": 5}) for i in range(20))
        batch.append(TelemetryEvent("end", "claude", sid, timestamp=ts + 30, event_id=f"{sid}-z",
                                    metadata={"status": "completed"}))
        if len(batch) >= 5000:
            store.store_batch(batch)
            batch = []
    if batch:
        store.store_batch(batch)
    events = sessions * 22
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    out: dict[str, Any] = {"sessions": sessions, "events": events}
    for name, exporter in (("otlp", build_otlp({"endpoint": url, "name": "bench-otlp"}, "otlp")),
                           ("webhook", build_webhook({"url": url + "/hook", "name": "bench-hook"}, "webhook"))):
        exporters = ExporterSet(store)
        exporters.add(exporter, DeliveryOptions(start_at="beginning", poll_interval_s=0.05))
        began = time.perf_counter()
        exporters.start()
        while exporters.status()[0]["lag"] > 0 or exporters.status()[0]["delivered"] < events:
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        exporters.shutdown(timeout=5.0)
        out[name] = {"seconds": elapsed, "sessions_per_s": sessions / elapsed, "events_per_s": events / elapsed}
    server.shutdown()
    store.shutdown()
    out["otlp_vs_webhook"] = ratio(out["otlp"]["sessions_per_s"], out["webhook"]["sessions_per_s"])
    return out


def main() -> None:
    """Run both halves and print the JSON line and a summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        receive = bench_receive(args.spans, Path(tmp))
        export = bench_export(args.sessions, Path(tmp))
    r, e = receive, export
    emit("otlp", {"machine": machine(), "receive": r, "export": e}, [
        f"receive: {r['otlp']['spans_per_s']:,.0f} spans/s over OTLP/HTTP protobuf "
        f"({r['otlp']['events_per_s']:,.0f} events/s); POST /api/events same events: "
        f"{r['api_events']['events_per_s']:,.0f} events/s (ratio {r['otlp_vs_api_events']:.2f})",
        f"export: {e['otlp']['sessions_per_s']:,.0f} sessions/s ({e['otlp']['events_per_s']:,.0f} events/s) "
        f"via otlp; webhook same store: {e['webhook']['sessions_per_s']:,.0f} sessions/s "
        f"(ratio {e['otlp_vs_webhook']:.2f})",
    ])


if __name__ == "__main__":
    main()
