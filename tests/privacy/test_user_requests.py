"""A user's data on request through the `telemetry` CLI: export, delete (nothing of theirs left), key rotation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vibekit_telemetry import Telemetry

TELEMETRY = [sys.executable, "-m", "vibekit_telemetry.cli"]
KEY, NEW_KEY = "ab" * 32, "ef" * 32


def _cli(*args: str, env: dict[str, str] | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
    import os

    result = subprocess.run([*TELEMETRY, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})
    assert result.returncode == code, result.stderr + result.stdout
    return result


def _seed(db: Path, **security: object) -> tuple[str, str]:
    t = Telemetry(db_path=str(db), security=security)
    try:
        mine = t.track_start("claude", "code", "Plan my trip, I am ann.lee@example.org", context={"user_id": "u-42"})
        t.track_stream(mine, "Sure Ann, here is the itinerary to Lisbon")
        t.track_end(mine)
        other = t.track_start("claude", "code", "Fix the build", context={"user_id": "u-7"})
        t.track_end(other)
        t.flush()
    finally:
        t.shutdown()
    return mine, other


def _file_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


def test_delete_leaves_nothing_of_the_user_and_an_audit_entry(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    mine, other = _seed(db)
    exported = json.loads(_cli("--db", str(db), "user", "export", "u-42").stdout)
    assert {e["session_id"] for e in exported["events"]} == {mine} and len(exported["events"]) == 3
    assert b"Lisbon" in _file_bytes(tmp_path)
    out = _cli("--db", str(db), "user", "delete", "u-42", "--reason", "GDPR erasure", "--request-id", "REQ-123",
               "-y", "--format", "json").stdout
    assert json.loads(out)["events"] == 3
    data = _file_bytes(tmp_path)
    assert b"Lisbon" not in data and b"ann.lee" not in data and b"u-42" not in data
    left = json.loads(_cli("--db", str(db), "sessions", "--format", "json").stdout)
    assert [s["id"] for s in left] == [other]
    audit = json.loads(_cli("--db", str(db), "db", "audit", "--format", "json", "--since", "1h").stdout)
    delete = next(e for e in audit if e["action"] == "delete")
    assert delete["actor"].startswith("cli") and delete["details"]["reason"] == "GDPR erasure"
    assert delete["details"]["request_id"] == "REQ-123"
    _cli("--db", str(db), "db", "audit", "--verify")


def test_delete_needs_a_reason(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _seed(db)
    result = _cli("--db", str(db), "user", "delete", "u-42", "-y", code=2)
    assert "--reason" in result.stderr


def test_audit_verify_fails_after_an_edit(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "t.db"
    _seed(db)
    _cli("--db", str(db), "user", "export", "u-7")
    _cli("--db", str(db), "user", "export", "u-42")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET actor = 'someone else' WHERE id = 1")
    result = _cli("--db", str(db), "db", "audit", "--verify", code=1)
    assert "entry 1: contents changed" in result.stderr


def test_keys_rotate_reencrypts_under_the_new_key(tmp_path: Path) -> None:
    pytest.importorskip("cryptography", reason="encryption at rest needs the crypto extra")
    db = tmp_path / "t.db"
    mine, _ = _seed(db, encryption={"enabled": True, "key": KEY})
    env = {"TELEMETRY_ENCRYPTION_ENABLED": "true", "TELEMETRY_ENCRYPTION_KEY": NEW_KEY,
           "TELEMETRY_ENCRYPTION_OLD_KEYS": KEY}
    assert "Re-encrypted 5 events and 2 sessions" in _cli("--db", str(db), "keys", "rotate", env=env).stdout
    # Only the new key is needed now.
    out = _cli("--db", str(db), "query", "--session", mine, "--format", "json",
               env={"TELEMETRY_ENCRYPTION_KEY": NEW_KEY}).stdout
    assert "Lisbon" in out
    result = _cli("--db", str(db), "query", "--session", mine, "--format", "json",
                  env={"TELEMETRY_ENCRYPTION_KEY": KEY}, code=1)
    assert "key id" in result.stderr and "Traceback" not in result.stderr
