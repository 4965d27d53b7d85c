"""The scheduled evaluation keeps settled minutes between runs: it scores the same series a full read gives."""

from __future__ import annotations

from analytics_workload import MIN, now_minute, workload

from vibekit_telemetry.analytics.engine import Analytics
from vibekit_telemetry.analytics.evaluation import REFRESH_MS, read_series
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.store import MemoryStore


def _events(rows: list[dict[str, object]]) -> list[TelemetryEvent]:
    return [TelemetryEvent(r["event_type"], r.get("category"), session_id=r["session_id"],  # type: ignore[arg-type]
                           timestamp=r["timestamp"], duration=r.get("duration"), label=r.get("label"))  # type: ignore[arg-type]
            for r in rows]


def test_cached_history_equals_a_full_read_and_late_rows_arrive_by_the_refresh() -> None:
    store = MemoryStore()
    end = now_minute()
    store.store_batch(_events(workload(end, minutes=60)))
    engine = Analytics(lambda: store, {"log": False}, live=False)
    ev = engine.evaluator

    def full(now: int) -> dict[str, tuple[list[int], list[float]]]:
        return read_series(store, ev.monitored, now - ev.history_ms, now, ())

    now = end + 5_000
    assert ev._history(now) == full(now)
    # New rows in the newest minutes, two minutes later: read again, cache extended.
    store.store_batch(_events(workload(end + 2 * MIN, minutes=2, seed=2)))
    now += 2 * MIN
    assert ev._history(now) == full(now)
    # A row 40 minutes late lands in a settled minute: left out until the hourly full read.
    store.store_batch(_events([{"event_type": "error", "session_id": "late", "category": "codex",
                                "timestamp": end - 40 * MIN, "label": "late"}]))
    assert ev._history(now + MIN) != full(now + MIN)
    later = now + REFRESH_MS
    assert ev._history(later) == full(later)
