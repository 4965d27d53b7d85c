"""The built-in plugins on a real Telemetry and SQLite file: cache, S3 export (fsspec), compliance, encryption."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.plugins.builtin import CachePlugin, CompliancePlugin, EncryptionPlugin, S3ExportPlugin

DAY_MS = 86_400_000


def _telemetry(tmp_path: Path, **options: Any) -> Telemetry:
    return Telemetry(db_path=str(tmp_path / "t.db"), **options)


def test_cache_answers_repeated_queries_and_writes_invalidate_it(tmp_path: Path) -> None:
    cache = CachePlugin(ttl_s=60, max_size=2)
    with _telemetry(tmp_path).use(cache) as t:
        sid = t.track_start("claude", "code", "hi")
        assert t.flush()
        assert len(t.query(session_id=sid)) == 1
        assert len(t.query(session_id=sid)) == 1
        assert cache.stats()["hits"] == 1
        t.track_end(sid)
        assert t.flush()
        assert len(t.query(session_id=sid)) == 2  # the write invalidated the cached answer
        t.get_stats()
        t.get_sessions()
        t.query(category="claude")
        assert cache.stats()["entries"] == 2  # max_size: the oldest went


def test_cache_entries_expire(tmp_path: Path) -> None:
    cache = CachePlugin(ttl_s=0.05)
    with _telemetry(tmp_path, plugins=[cache]) as t:
        t.query()
        time.sleep(0.1)
        t.query()
        assert cache.stats()["hits"] == 0 and cache.stats()["misses"] == 2


def test_cache_options_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"cache\.ttl_s"):
        CachePlugin(ttl_s=0)
    with pytest.raises(ValidationError, match=r"cache\.max_size"):
        CachePlugin(max_size="big")  # type: ignore[arg-type]


def test_s3_export_writes_only_new_events_and_the_rest_at_shutdown(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec", reason="the export extra (fsspec) is not installed")
    url = f"memory://telemetry-{tmp_path.name}/events"
    plugin = S3ExportPlugin(url, format="ndjson", every="1h")
    t = _telemetry(tmp_path, plugins=[plugin])
    sid = t.track_start("claude", "code", "hi")
    assert t.flush()
    assert plugin.run().record_count == 1
    time.sleep(0.002)  # the next event is timestamped after the first window's end
    t.track_end(sid)
    assert t.flush()
    assert plugin.run().record_count == 1  # only the new one
    t.track_start("codex", "code", "again")
    t.shutdown()  # the plugin's shutdown exports what came since
    files = sorted(fsspec.filesystem("memory").ls(url.removeprefix("memory://"), detail=False))
    assert len(files) == 3
    lines = [fsspec.filesystem("memory").cat(f).decode().splitlines() for f in files]
    assert [len(x) for x in lines] == [1, 1, 1] and '"codex"' in lines[2][0]


def test_s3_export_options_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"s3-export\.url"):
        S3ExportPlugin("")
    with pytest.raises(ValidationError, match="format"):
        S3ExportPlugin("s3://b/p", format="xml")
    with pytest.raises(ValidationError, match=r"s3-export\.every"):
        S3ExportPlugin("s3://b/p", every=-1)


def test_compliance_deletes_and_anonymises_with_the_privacy_retention(tmp_path: Path) -> None:
    plugin = CompliancePlugin(regulations=["gdpr", "ccpa"], retention_days=90, interval="1h")
    with _telemetry(tmp_path).use(plugin) as t:
        now = int(time.time() * 1000)
        t.track({"event_type": "start", "session_id": "old", "agent_type": "claude", "timestamp": now - 100 * DAY_MS})
        t.track({"event_type": "start", "session_id": "mid", "agent_type": "claude", "timestamp": now - 40 * DAY_MS,
                 "metadata": {"user_id": "u-1", "tokens": 3}})
        t.track({"event_type": "start", "session_id": "new", "agent_type": "claude", "metadata": {"user_id": "u-2"}})
        assert t.flush()
        assert plugin.run() == {"deleted": 1, "anonymized": 1}
        kept = {e.session_id: e.metadata for e in t.query()}
        assert kept == {"mid": {"tokens": 3}, "new": {"user_id": "u-2"}}


def test_compliance_options_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"compliance.regulations\[1\]"):
        CompliancePlugin(regulations=["gdpr", "hipaa"])
    with pytest.raises(ValidationError, match=r"compliance\.retention_days"):
        CompliancePlugin(retention_days=0)


def test_encryption_plugin_encrypts_at_rest_and_reads_back_plaintext(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="the crypto extra is not installed")
    with _telemetry(tmp_path, plugins=[{"type": "encryption", "options": {"key": "ab" * 32}}]) as t:
        sid = t.track_start("claude", "code", "a secret prompt")
        assert t.flush()
        assert t.query(session_id=sid)[0].label == "a secret prompt"
    with sqlite3.connect(tmp_path / "t.db") as conn:
        (label,) = conn.execute("SELECT label FROM events").fetchone()
    assert label.startswith("vkenc1:") and "secret" not in label


def test_encryption_plugin_needs_a_sql_store() -> None:
    pytest.importorskip("cryptography", reason="the crypto extra is not installed")
    with pytest.raises(ValidationError, match=r"encryption\.storage"):
        Telemetry(storage=[{"type": "memory"}], plugins=[EncryptionPlugin("ab" * 32)])


def test_s3_export_to_a_real_s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs", reason="s3fs is not installed (usage extra)")
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # The export code takes S3 settings from the environment, as boto does.
        for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        import boto3  # comes with moto

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="telemetry-exports")
        plugin = S3ExportPlugin("s3://telemetry-exports/daily", format="csv", compression="gzip")
        with _telemetry(tmp_path, plugins=[plugin]) as t:
            t.track_start("claude", "code", "hi")
            assert t.flush()
            result = plugin.run()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="telemetry-exports")["Contents"]]
        assert result.record_count == 1 and keys == [result.path.removeprefix("s3://telemetry-exports/")]
        assert keys[0].startswith("daily/events-") and keys[0].endswith(".csv.gz")
    finally:
        server.stop()
