"""Encryption at rest: no plaintext in the database file, reads decrypt, wrong or missing keys fail clearly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("cryptography", reason="encryption at rest needs the crypto extra (cryptography)")

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.privacy.crypto import EncryptionKeyError

KEY = "ab" * 32
OTHER = "cd" * 32
SECRET = "the launch code is swordfish-7781"


def _record(db: Path, **security: object) -> str:
    t = Telemetry(db_path=str(db), security=security)
    try:
        sid = t.track_start("claude", "code", SECRET, metadata={"note": SECRET})
        t.track_stream(sid, SECRET)
        t.track_end(sid)
        t.flush()
    finally:
        t.shutdown()
    return sid


def _raw_values(db: Path) -> list[object]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT label, stream_data, metadata, category, session_id FROM events").fetchall()
        rows += conn.execute("SELECT label, metadata, category, id, id FROM sessions").fetchall()
    return [v for row in rows for v in row]


def test_file_holds_no_plaintext_and_reads_decrypt(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sid = _record(db, encryption={"enabled": True, "key": KEY})
    raw = _raw_values(db)
    assert not any(isinstance(v, str) and "swordfish" in v for v in raw)
    assert b"swordfish" not in b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert "claude" in raw and sid in raw  # filtered fields stay in clear
    t = Telemetry(db_path=str(db), security={"encryption": {"enabled": True, "key": KEY}})
    try:
        events = t.query(session_id=sid, category="claude", event_type="start")
        session = t.get_session(sid)
    finally:
        t.shutdown()
    assert events[0].label == SECRET and events[0].metadata == {"note": SECRET}
    assert session is not None and session.label == SECRET


def test_missing_and_wrong_key_give_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "t.db"
    monkeypatch.setenv("TELEMETRY_ENCRYPTION_KEY", KEY)
    sid = _record(db, encryption={"enabled": True})
    monkeypatch.delenv("TELEMETRY_ENCRYPTION_KEY")
    from vibekit_telemetry.privacy import crypto

    crypto.KEYRING._keys.clear()  # a fresh process: no key known
    for security in ({}, {"encryption": {"key": OTHER}}):
        t = Telemetry(db_path=str(db), security=security)
        try:
            with pytest.raises(EncryptionKeyError, match="key id"):
                t.query(session_id=sid)
        finally:
            t.shutdown()


def test_rotation_reads_old_values_with_old_keys(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sid = _record(db, encryption={"enabled": True, "key": KEY})
    _record(db, encryption={"enabled": True, "key": OTHER, "old_keys": [KEY]})
    t = Telemetry(db_path=str(db), security={"encryption": {"enabled": True, "key": OTHER, "old_keys": [KEY]}})
    try:
        assert t.query(session_id=sid)[0].label == SECRET
    finally:
        t.shutdown()


def test_passphrase_key_uses_the_stored_salt(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sid = _record(db, encryption={"enabled": True, "passphrase": "correct horse"})
    assert not any(isinstance(v, str) and "swordfish" in v for v in _raw_values(db))
    t = Telemetry(db_path=str(db), security={"encryption": {"passphrase": "correct horse"}})
    try:
        assert t.query(session_id=sid, event_type="stream")[0].stream_data == SECRET
    finally:
        t.shutdown()


def test_bad_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"security\.encryption\.key"):
        Telemetry(db_path=str(tmp_path / "t.db"), raise_on_error=True,
                  security={"encryption": {"enabled": True, "key": "xyz"}})

