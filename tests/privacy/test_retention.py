"""Compliance retention: identifying fields gone after anonymize_after days, events gone after delete_after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.config import RetentionConfig
from vibekit_telemetry.events import now_ms
from vibekit_telemetry.privacy.retention import DAY_MS, apply_retention
from vibekit_telemetry.store.memory import MemoryStore
from vibekit_telemetry.store.sql import SQLStore


def _seed(db: Path, **security: Any) -> None:
    t = Telemetry(db_path=str(db), security=security)
    now = now_ms()
    try:
        for age_days, sid in ((100, "old"), (40, "middle"), (1, "new")):
            t.track_start("claude", "code", f"task {sid}", session_id=sid, timestamp=now - age_days * DAY_MS,
                          context={"user_id": f"u-{sid}", "platform": "linux"},
                          metadata={"email": f"{sid}@example.com", "model": "m1"})
        t.flush()
    finally:
        t.shutdown()


@pytest.mark.parametrize("encrypted", [False, True])
def test_anonymize_then_delete_on_sqlite(tmp_path: Path, encrypted: bool) -> None:
    security: dict[str, Any] = {}
    if encrypted:
        pytest.importorskip("cryptography", reason="encryption at rest needs the crypto extra")
        security = {"encryption": {"enabled": True, "key": "34" * 32}}
    db = tmp_path / "t.db"
    _seed(db, **security)
    t = Telemetry(db_path=str(db), security=security)
    try:
        store = t._runtime.store  # type: ignore[union-attr]
        assert isinstance(store, SQLStore)
        done = apply_retention(store, RetentionConfig(anonymize_after=30, retention_days=90))
        assert done == {"anonymized": 1, "deleted": 1}
        events = {e.session_id: e for e in t.query()}
        assert set(events) == {"middle", "new"}
        assert events["middle"].context == {"platform": "linux"} and events["middle"].metadata == {"model": "m1"}
        assert events["new"].context == {"user_id": "u-new", "platform": "linux"}
        assert store.audit_log(1)[0]["action"] == "retention"
        assert apply_retention(store, RetentionConfig(anonymize_after=30, delete_after=90)) == \
            {"anonymized": 0, "deleted": 0}
    finally:
        t.shutdown()


def test_anonymize_on_memory_store() -> None:
    from vibekit_telemetry.events import TelemetryEvent

    store = MemoryStore()
    old = TelemetryEvent("start", "claude", session_id="s", timestamp=now_ms() - 50 * DAY_MS, event_id="e1",
                         context={"user": "ann", "os": "linux"})
    store.store_batch([old])
    assert apply_retention(store, RetentionConfig(anonymize_after=30))["anonymized"] == 1
    assert store.query(__import__("vibekit_telemetry.query", fromlist=["QueryFilter"]).QueryFilter())[0].context \
        == {"os": "linux"}
