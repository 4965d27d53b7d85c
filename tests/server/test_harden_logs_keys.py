"""Issue 7, attacks 1 and 2 against a real `telemetry api` process: secrets in logs, key parsing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_support import start_event
from websockets.sync.client import connect

from servers import ServerProcess
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server.log_redaction import redact
from vibekit_telemetry.server.settings import parse_credential, split_credentials

SECRET = "SECRETKEY123-do-not-log-me"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


def test_attack_1_query_string_secrets_never_reach_the_access_log(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "t.db", "--api-key", f"{SECRET}:read") as server:
        for name in ("api_key", "key", "token", "access_token", "API_KEY", "apiKey"):
            httpx.get(f"{server.url}/api/events", params={"since": "1h", name: SECRET}, timeout=10)
        # EventSource-style stream: the key authenticates, the stream opens, its line is logged.
        with httpx.stream("GET", f"{server.url}/api/stream?api_key={SECRET}", timeout=10) as stream:
            assert stream.status_code == 200
        ws_url = server.url.replace("http://", "ws://") + f"/ws?token={SECRET}&session_id=s1"
        with connect(ws_url) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        log = server.stop()
    assert "GET /api/events?since=1h&api_key=[REDACTED]" in log, log
    assert "/api/stream?api_key=[REDACTED]" in log and "/ws?token=[REDACTED]&session_id=s1" in log, log
    assert SECRET not in log


def test_redaction_covers_every_credential_parameter() -> None:
    line = ('127.0.0.1:5 - "GET /x?a=1&access_token=T1&refresh-token=T2;password=T3&client_secret=T4'
            '&keys=kept&key=T5 HTTP/1.1" 200')
    redacted = redact(line)
    assert all(f"T{i}" not in redacted for i in range(1, 6)), redacted
    assert "a=1" in redacted and "keys=kept" in redacted and redacted.endswith('HTTP/1.1" 200')


def test_attack_2_a_scope_after_a_comma_never_becomes_a_key(tmp_path: Path) -> None:
    # The issue's env value: `,read` used to mint an all-scope key whose secret was the word "read".
    env = {"TELEMETRY_API_KEYS": "agentsecret-0123456789:ingest,read"}
    db = tmp_path / "t.db"
    server = ServerProcess(db, env=env, log_level="warning")
    try:
        assert httpx.delete(f"{server.url}/api/events?older_than=0d", headers={"X-API-Key": "read"}).status_code \
            == 401
        good = {"X-API-Key": "agentsecret-0123456789"}
        assert httpx.post(f"{server.url}/api/events?wait=true", json=start_event("s1"), headers=good).status_code \
            == 200
        assert httpx.get(f"{server.url}/api/events", headers=good).json()["count"] == 1
        refused = httpx.delete(f"{server.url}/api/events?older_than=0d", headers=good)
        assert refused.status_code == 403 and "'admin'" in refused.json()["message"]
    finally:
        server.stop()


@pytest.mark.parametrize(("key", "named"), [
    ("k-0123456789abcdef:bogus", "'bogus'"),            # unknown scope: exit 2 naming it
    ("k-0123456789abcdef:ingest+root", "'root'"),
    ("short:read", "too short"),                         # fewer than 16 characters
    ("read", "scope name"),                              # a scope name as a key
    ("sha256:abcd:read", "64 hex digits"),               # a malformed hashed key
])
def test_attack_2_bad_keys_stop_the_server_at_startup(tmp_path: Path, key: str, named: str) -> None:
    result = _cli("--db", str(tmp_path / "t.db"), "api", "--port", "0", "--api-key", key)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "api_keys" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_keys_from_the_environment_are_refused_too(tmp_path: Path) -> None:
    result = _cli("--db", str(tmp_path / "t.db"), "api", "--port", "0",
                  env={"TELEMETRY_BEARER_TOKENS": "t-0123456789abcdef:sudo"})
    assert result.returncode == 2 and "unknown scope 'sudo'" in result.stderr and "bearer_tokens" in result.stderr
    # The issue's exact value: the 11-character key is refused, and no key `read` is ever made.
    issue = _cli("--db", str(tmp_path / "t.db"), "api", "--port", "0",
                 env={"TELEMETRY_API_KEYS": "agentsecret:ingest,read"})
    assert issue.returncode == 2 and "too short" in issue.stderr and "agentsecret" not in issue.stderr


def test_parse_credential_rules() -> None:
    assert split_credentials("a-0123456789abcdef:ingest,read,b-0123456789abcdef") == [
        "a-0123456789abcdef:ingest+read", "b-0123456789abcdef"]
    assert parse_credential("a-0123456789abcdef:Ingest+READ", "api_key").scopes == {"ingest", "read"}
    hashed = parse_credential("sha256:" + "AB" * 32 + ":read", "api_key")
    assert hashed.digest == bytes.fromhex("ab" * 32) and hashed.scopes == {"read"}
    assert parse_credential("sixteen-chars-ok", "bearer").kind == "bearer"
    with pytest.raises(ValidationError) as error:
        parse_credential("tiny-secret:ingest", "api_key")
    assert "tiny-secret" not in str(error.value)  # the error never repeats a secret


def test_keys_generate_prints_a_hashed_entry_the_server_accepts(tmp_path: Path) -> None:
    generated = _cli("keys", "generate", "--scopes", "ingest", "--format", "json")
    assert generated.returncode == 0, generated.stderr
    made = json.loads(generated.stdout)
    key, entry = made["key"], made["config_entry"]
    assert len(key) >= 40 and made["scopes"] == ["ingest"]
    assert entry == "sha256:" + hashlib.sha256(key.encode()).hexdigest() + ":ingest"
    # The server is given only the hash: the config and the process's arguments hold no secret.
    with ServerProcess(tmp_path / "t.db", "--api-key", entry, log_level="warning") as server:
        headers = {"X-API-Key": key}
        assert httpx.post(f"{server.url}/api/events", json=start_event("h"), headers=headers).status_code == 200
        assert httpx.get(f"{server.url}/api/events", headers=headers).status_code == 403
        assert httpx.post(f"{server.url}/api/events", json=start_event("h"),
                          headers={"X-API-Key": entry}).status_code == 401


def test_keys_generate_text_output_and_bad_scope() -> None:
    text = _cli("keys", "generate")
    assert text.returncode == 0
    lines = dict(line.split(":", 1) for line in text.stdout.splitlines())
    assert lines["scopes"].strip() == "ingest+read+admin"
    assert lines["config entry"].strip().startswith("sha256:") and lines["key"].strip().startswith("vkt_")
    assert _cli("keys", "generate").stdout != text.stdout  # a fresh key every time
    bad = _cli("keys", "generate", "--scopes", "ingest+everything")
    assert bad.returncode == 2 and "'everything'" in bad.stderr
