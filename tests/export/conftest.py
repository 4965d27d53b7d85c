"""Fixtures for the export tests: recording Telemetry instances on memory stores or real SQLite files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vibekit_telemetry import Telemetry


@pytest.fixture
def make_memory() -> Iterator[Callable[..., Telemetry]]:
    """Create Telemetry instances on in-memory stores; all are shut down afterwards."""
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        options.setdefault("storage", [{"type": "memory"}])
        options.setdefault("stream_flush_interval_ms", 10)
        telemetry = Telemetry(raise_on_error=True, **options)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3-protocol server (moto's, as tests/usage/test_usage_batcher.py uses) on a free loopback port."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (usage extra)")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An empty S3 account on the module's server with bucket `exports`; returns s3fs options.

    The AWS_* variables are set too, as a CLI user would set them (s3fs and botocore read them).
    """
    import boto3  # comes with moto
    import httpx

    # moto keeps its state per process, not per server: start each test from an empty account.
    httpx.post(moto_endpoint + "/moto-api/reset").raise_for_status()
    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=moto_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="exports")
    return {"endpoint_url": moto_endpoint, "key": "testing", "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"}}
