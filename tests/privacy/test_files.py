"""A new database file is created owner-only (0600), and the directories made for it 0700."""

from __future__ import annotations

from pathlib import Path

from vibekit_telemetry import Telemetry


def _record(db: Path) -> None:
    t = Telemetry(db_path=str(db))
    try:
        t.track_start("claude", "code", "hello")
        t.flush()
    finally:
        t.shutdown()


def test_new_database_and_directory_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new" / "dir" / "t.db"
    _record(db)
    assert (db.stat().st_mode & 0o777) == 0o600
    assert (db.parent.stat().st_mode & 0o777) == 0o700 and (db.parent.parent.stat().st_mode & 0o777) == 0o700
    for extra in db.parent.iterdir():
        assert (extra.stat().st_mode & 0o077) == 0, extra
