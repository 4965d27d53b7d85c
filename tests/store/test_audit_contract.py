"""The audit trail on every backend: filters, per-record history with changed fields, and the hash chain."""

from __future__ import annotations

from typing import Any

from vibekit_telemetry.store.base import Auditable


def test_entries_chain_and_filter(store: Any) -> None:
    assert isinstance(store, Auditable)
    store.record_audit("cli:ann", "config", "security.pii", {"enabled": True})
    store.record_audit("key:ab12", "update", "session:s1", table="sessions", record_id="s1",
                       old_values={"status": "active", "label": "x"}, new_values={"status": "completed", "label": "x"})
    store.record_audit("key:ab12", "delete", "session:s1", {"why": "test"}, table="sessions", record_id="s1",
                       old_values={"status": "completed"})
    newest = store.audit_log(10)
    assert [e["action"] for e in newest] == ["delete", "update", "config"]
    assert newest[2]["details"] == {"enabled": True} and newest[2]["actor"] == "cli:ann"
    assert [e["action"] for e in store.audit_log(10, table="sessions")] == ["delete", "update"]
    assert [e["action"] for e in store.audit_log(10, action="config")] == ["config"]
    assert store.audit_log(10, since=newest[0]["timestamp"] + 60_000) == []
    history = store.audit_history("sessions", "s1")
    assert [e["action"] for e in history] == ["update", "delete"]
    assert history[0]["changed_fields"] == ["status"]
    assert history[0]["old_values"] == {"status": "active", "label": "x"}
    assert store.verify_audit() == []
    assert newest[0]["prev_hash"] == newest[1]["hash"] != newest[0]["hash"]


def test_verify_detects_an_edited_or_deleted_entry(store: Any, backend: str) -> None:
    for i in range(4):
        store.record_audit("cli:ann", "delete", f"session:s{i}", {"n": i})
    assert store.verify_audit() == []
    if backend == "memory":
        store._audit[1]["actor"] = "mallory"
        assert any("entry 2: contents changed" in p for p in store.verify_audit())
        del store._audit[2]
    else:
        from sqlalchemy import delete, update

        from vibekit_telemetry.store.schema import audit_log

        with store.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.id == 2).values(actor="mallory"))
        assert any("entry 2: contents changed" in p for p in store.verify_audit())
        with store.engine.begin() as conn:
            conn.execute(delete(audit_log).where(audit_log.c.id == 3))
    problems = store.verify_audit()
    assert any("entry 4: does not follow" in p for p in problems), problems
