"""Insight assembly: trends against the previous period and recommendations, each with its evidence."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..query import SessionFilter
from ..store.base import QueryableStore
from .window import DAY, MINUTE, breakdown_store, rounded

# A session with no event for this long that never ended is reported as abandoned.
ABANDONED_AFTER_MS: Final = 30 * MINUTE
# How far back abandoned sessions are looked for (the start_time index bounds the read), and how many.
ABANDONED_LOOKBACK_MS: Final = 7 * DAY
ABANDONED_LIMIT: Final = 200


def trends(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Compare this period's totals (b) with the previous one's of the same length (a), per headline metric."""
    pairs = {
        "throughput": (a["count"], b["count"]),
        "error_rate": (100.0 * a["errors"] / a["count"] if a["count"] else None,
                       100.0 * b["errors"] / b["count"] if b["count"] else None),
        "response_time": (a["dsum"] / a["dcount"] if a["dcount"] else None,
                          b["dsum"] / b["dcount"] if b["dcount"] else None),
        "session_duration": (a["end_dsum"] / a["end_dcount"] if a["end_dcount"] else None,
                             b["end_dsum"] / b["end_dcount"] if b["end_dcount"] else None),
    }
    out = []
    for metric, (old, new) in pairs.items():
        if old is None or new is None:
            continue
        change = 100.0 * (new - old) / old if old else (100.0 if new else 0.0)
        direction = "up" if change > 10 else "down" if change < -10 else "flat"
        out.append({"metric": metric, "direction": direction, "change_pct": round(change, 1),
                    "previous": rounded(float(old)), "current": rounded(float(new)),
                    "evidence": f"{metric} {float(old):.4g} in the previous period, {float(new):.4g} in this one"})
    return out


def recommendations(metrics: Mapping[str, Any], before: Mapping[str, Any], current: Mapping[str, Any],
                    anomalies: Sequence[Mapping[str, Any]], abandoned: dict[str, Any] | None,
                    ttfc_slow_ms: float) -> list[dict[str, Any]]:
    """What to look at: agents whose error rate rose, abandoned sessions, slow first chunks, errors, anomalies."""
    out = _error_rate_increases(before, current)
    if abandoned:
        out.append(abandoned)
    ttfc = metrics["performance"].get("time_to_first_chunk") or {}
    if ttfc.get("p95") is not None and ttfc["p95"] > ttfc_slow_ms:
        out.append({"kind": "slow_time_to_first_chunk", "severity": "warning",
                    "message": f"Time to first chunk p95 is {ttfc['p95']:.0f} ms (above "
                               f"{ttfc_slow_ms:.0f} ms): users wait before seeing output; "
                               "check prompt size and model choice",
                    "evidence": ttfc})
    if metrics["errors"]["rate"] >= 5 and metrics["events"]["total"] >= 20:
        rate = metrics["errors"]["rate"]
        out.append({"kind": "high_error_rate", "severity": "critical" if rate >= 20 else "warning",
                    "message": f"{rate:.1f}% of events are errors",
                    "evidence": {"errors": metrics["errors"], "events": metrics["events"]["total"]}})
    if anomalies:
        worst = max(anomalies, key=lambda a: abs(a["score"]))
        out.append({"kind": "anomalies", "severity": worst["severity"],
                    "message": f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}; "
                               f"the strongest: {worst['description']}",
                    "evidence": {"count": len(anomalies), "strongest": worst}})
    return out


def _error_rate_increases(before: Mapping[str, Any], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    old = {a["agent"]: a for a in before["agents"]}
    for agent in current["agents"]:
        prev = old.get(agent["agent"])
        rate, prev_rate = agent["error_rate"], prev["error_rate"] if prev else 0.0
        if agent["errors"] >= 5 and rate >= 2 * max(prev_rate, 0.5):
            out.append({"kind": "error_rate_increase", "severity": "critical" if rate >= 20 else "warning",
                        "message": f"Agent {agent['agent'] or '(none)'}: error rate {rate:.1f}% vs "
                                   f"{prev_rate:.1f}% in the previous period; look at its recent errors "
                                   f"(`telemetry query --type error --agent {agent['agent']}`)",
                        "evidence": {"agent": agent["agent"], "error_rate": rate, "previous_error_rate": prev_rate,
                                     "errors": agent["errors"], "events": agent["events"]}})
    return out


class AbandonedSessions:
    """The abandoned-sessions recommendation, looked up at most once per minute: it moves on a
    30-minute scale, and the lookup walks a week of sessions by start time (the dashboard asks
    for insights every few seconds)."""

    def __init__(self) -> None:
        self._minute: int | None = None
        self._found: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def find(self, store: QueryableStore, now: int) -> dict[str, Any] | None:
        """The recommendation for `now`'s minute (None: no abandoned session)."""
        minute = now // MINUTE
        with self._lock:
            if self._minute != minute:
                self._found = _abandoned(store, now)
                self._minute = minute
            return self._found


def _abandoned(store: QueryableStore, now: int) -> dict[str, Any] | None:
    """Sessions open for 30 minutes without an event: looked up only when the session rollups count
    active sessions started in the look-back (most stores have none, and the lookup walks a week of
    sessions by start time)."""
    stale_before = now - ABANDONED_AFTER_MS
    since = now - ABANDONED_LOOKBACK_MS
    counted = breakdown_store(store).session_breakdown((), since, stale_before)
    if not counted or not counted[0].active:
        return None
    open_sessions = store.get_sessions(SessionFilter(statuses=["active"], since=since, until=stale_before,
                                                     limit=ABANDONED_LIMIT))
    abandoned = [s for s in open_sessions if (s.last_event_time or s.start_time) < stale_before]
    if not abandoned:
        return None
    return {"kind": "abandoned_sessions", "severity": "warning",
            "message": f"{len(abandoned)} session(s) have had no event for 30 minutes and never ended: "
                       "call track_end (or use `with telemetry.session(...)`) so they close",
            "evidence": {"count": len(abandoned), "sample_session_ids": [s.id for s in abandoned[:5]],
                         "oldest_start": min(s.start_time for s in abandoned)}}
