"""`telemetry api --grpc-tls-cert/--grpc-tls-key`: both gRPC servers (TelemetryStream, OTLP/gRPC) over TLS.

A real `telemetry api` process with a self-signed certificate made here; real clients over
grpc.ssl_channel_credentials succeed, plaintext clients fail; bad pairs are errors naming the option.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("grpc_tools", reason="the grpc extra (grpcio-tools) is not installed")
pytest.importorskip("opentelemetry.proto", reason="the otlp extra is not installed")
pytest.importorskip("cryptography", reason="cryptography makes the test certificate")

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from servers import ServerProcess, free_port, refused_api, self_signed
from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server.tls import load_tls_pair
from vibekit_telemetry.streaming.grpc_service import GrpcStreamClient

KEY = "grpc-tls-secret-0123456789"


def test_both_grpc_servers_speak_tls_and_refuse_plaintext(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    roots = cert.read_bytes()
    otlp_port = free_port()
    db = tmp_path / "tls.db"
    with ServerProcess(db, "--grpc-port", "0", "--otlp-grpc", "--otlp-grpc-port", str(otlp_port),
                       "--grpc-tls-cert", str(cert), "--grpc-tls-key", str(key),
                       "--api-key", f"{KEY}:read+ingest") as server:
        output = server.output()
        found = re.search(r"gRPC TelemetryStream at (127\.0\.0\.1:\d+) \(TLS", output)
        assert found, output
        target = found.group(1)
        assert f"OTLP/gRPC receiver at https://127.0.0.1:{otlp_port} (TLS" in output, output

        client = GrpcStreamClient(target, api_key=KEY, root_certificates=roots)
        reply = client.ingest([[{"event_type": "start", "session_id": "tls-1", "category": "claude"}],
                               [{"event_type": "end", "session_id": "tls-1"}]])
        assert (reply.accepted, reply.batches) == (2, 2)
        client.close()

        plain = GrpcStreamClient(target, api_key=KEY)
        with pytest.raises(grpc.RpcError) as refused:
            plain.ingest([[{"event_type": "start", "session_id": "plain-1", "category": "claude"}]], timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        plain.close()

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint=f"https://127.0.0.1:{otlp_port}", credentials=grpc.ssl_channel_credentials(roots),
            headers={"x-api-key": KEY})))
        with provider.get_tracer("tls").start_as_current_span("invoke_agent planner",
                                                             attributes={"gen_ai.system": "anthropic"}) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
        provider.shutdown()

        with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.RpcError) as plain_otlp:
                stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=[("x-api-key", KEY)],
                            timeout=10)
            assert plain_otlp.value.code() == grpc.StatusCode.UNAVAILABLE
    with Telemetry(db_path=str(db)) as telemetry:
        session = telemetry.get_session("tls-1")
        assert session is not None and session.status == "completed"
        traced = telemetry.get_session(trace_id)
        assert traced is not None and traced.category == "anthropic"
        assert telemetry.get_session("plain-1") is None


def test_tls_from_environment_and_config_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {"TELEMETRY_GRPC_TLS_CERT": str(cert), "TELEMETRY_GRPC_TLS_KEY": str(key)}
    with ServerProcess(tmp_path / "env.db", "--grpc-port", "0", env=env) as server:
        assert re.search(r"gRPC TelemetryStream at 127\.0\.0\.1:\d+ \(TLS, certificate ", server.output())
    config = tmp_path / "telemetry.toml"
    config.write_text(f'[telemetry.api]\ngrpc_port = 0\ngrpc_tls_cert = "{cert}"\ngrpc_tls_key = "{key}"\n',
                      encoding="utf-8")
    with ServerProcess(tmp_path / "file.db", env={"TELEMETRY_CONFIG": str(config)}) as server:
        found = re.search(r"gRPC TelemetryStream at (127\.0\.0\.1:\d+) \(TLS", server.output())
        assert found, server.output()
        client = GrpcStreamClient(found.group(1), root_certificates=cert.read_bytes())
        assert client.ingest([[{"event_type": "start", "session_id": "f1", "category": "codex"}]]).accepted == 1
        client.close()


def test_half_a_pair_is_an_error_naming_the_missing_option(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    result = refused_api(tmp_path, "--grpc-port", "0", "--grpc-tls-cert", str(cert))
    assert result.returncode != 0
    assert "--grpc-tls-key: missing; --grpc-tls-cert was given" in result.stderr, result.stderr
    result = refused_api(tmp_path, "--grpc-port", "0", env={"TELEMETRY_GRPC_TLS_KEY": str(key)})
    assert result.returncode != 0
    assert "--grpc-tls-cert: missing; --grpc-tls-key was given" in result.stderr, result.stderr
    config = tmp_path / "half.toml"
    config.write_text(f'[telemetry.api]\ngrpc_tls_cert = "{cert}"\n', encoding="utf-8")
    result = refused_api(tmp_path, "--grpc-port", "0", env={"TELEMETRY_CONFIG": str(config)})
    assert result.returncode != 0
    assert "api.grpc_tls_key: missing; api.grpc_tls_cert was given" in result.stderr, result.stderr


def test_unreadable_wrong_or_mismatched_files_are_errors_naming_the_option(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    missing = tmp_path / "nope.pem"
    result = refused_api(tmp_path, "--grpc-port", "0", "--grpc-tls-cert", str(missing), "--grpc-tls-key", str(key))
    assert result.returncode != 0
    assert f"--grpc-tls-cert: cannot read {missing}" in result.stderr, result.stderr
    result = refused_api(tmp_path, "--grpc-port", "0", "--grpc-tls-cert", str(cert), "--grpc-tls-key", str(cert))
    assert result.returncode != 0
    assert f"--grpc-tls-key: {cert} is not a PEM private key" in result.stderr, result.stderr
    result = refused_api(tmp_path, "--grpc-port", "0", "--grpc-tls-cert", str(cert), "--grpc-tls-key", str(other_key))
    assert result.returncode != 0
    assert f"--grpc-tls-key: {other_key} is not the private key of the certificate {cert}" in result.stderr
    assert "Serving" not in result.stdout + result.stderr
    assert other_cert.exists()


def test_load_tls_pair_names_the_fields_it_is_given(tmp_path: Path) -> None:
    assert load_tls_pair(None, None) is None
    cert, key = self_signed(tmp_path)
    pair = load_tls_pair(str(cert), str(key))
    assert pair is not None and pair.cert == cert.read_bytes() and pair.key == key.read_bytes()
    with pytest.raises(ValidationError) as half:
        load_tls_pair(str(cert), None)
    assert half.value.field == "api.grpc_tls_key"
    unreadable = tmp_path / "dir.pem"
    unreadable.mkdir()
    with pytest.raises(ValidationError) as bad:
        load_tls_pair(str(unreadable), str(key), cert_field="tls_cert")
    assert bad.value.field == "tls_cert" and "cannot read" in str(bad.value)
