"""OpenTelemetry both ways: sessions as OTLP traces (encode, exporter) and OTLP spans back to events (decode).

Needs the `otlp` extra (opentelemetry-proto, protobuf, grpcio); nothing here is imported by
`import vibekit_telemetry`.
"""
