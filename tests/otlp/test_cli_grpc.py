"""`telemetry api --otlp-grpc` as a user runs it: a real process, the official SDK's gRPC exporter as client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _otlp_support import free_port
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from servers import ServerProcess
from vibekit_telemetry import Telemetry


def test_telemetry_api_with_otlp_grpc_stores_what_an_sdk_sends(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    grpc_port = free_port()
    with ServerProcess(db, "--otlp-grpc", "--otlp-grpc-port", str(grpc_port)) as server:
        assert f"OTLP/gRPC receiver at http://127.0.0.1:{grpc_port}" in server.output(), server.output()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{grpc_port}", insecure=True)))
        with provider.get_tracer("cli").start_as_current_span("invoke_agent planner",
                                                              attributes={"gen_ai.system": "anthropic"}) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.shutdown()
    with Telemetry(db_path=str(db)) as telemetry:
        session = telemetry.get_session(trace_id)
        assert session is not None and session.category == "anthropic" and session.status == "completed"


def test_a_busy_grpc_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(tmp_path / "x.db"), "api", "--port", "0",
             "--otlp-grpc", "--otlp-grpc-port", str(port)],
            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert result.returncode != 0
    assert f"cannot listen for OTLP/gRPC on 127.0.0.1:{port}" in result.stderr + result.stdout
