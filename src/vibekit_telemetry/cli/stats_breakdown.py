"""`telemetry stats --breakdown KEYS [--percentiles]`: events and sessions per group, from the store's read API.

Event counts come from the rollups (ReadBreakdown.event_breakdown), sessions and their percentiles
from the sessions (session_breakdown: nearest-rank values computed inside the database); no scan
of raw events whatever their number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import ValidationError
from ..store.base import BREAKDOWN_PERCENTILES, EventGroup, ReadBreakdown, SessionGroup
from .options import console, format_duration, print_table

# What users type -> the stored field; the first name of each is what tables and JSON show.
KEY_NAMES: Final = {"agent": "category", "category": "category", "agent_type": "category",
                    "mode": "action", "action": "action",
                    "type": "event_type", "event_type": "event_type", "action_type": "event_type",
                    "status": "status"}
ALLOWED: Final = "agent (category), mode (action), type (event_type), status"


def parse_keys(text: str) -> tuple[str, ...]:
    """Return the stored fields named by a comma-separated --breakdown value, or raise naming the option."""
    names = [part.strip().lower().replace("-", "_") for part in text.split(",") if part.strip()]
    if not names:
        raise ValidationError("--breakdown", f"one or more of {ALLOWED}", text)
    keys = []
    for name in names:
        if name not in KEY_NAMES:
            raise ValidationError("--breakdown", f"keys among {ALLOWED}", name)
        if KEY_NAMES[name] in keys:
            raise ValidationError("--breakdown", "each key once", name)
        keys.append(KEY_NAMES[name])
    if "event_type" in keys and "status" in keys:
        raise ValidationError("--breakdown", "type or status, not both (events have no status, sessions no type)",
                              text)
    return tuple(keys)


def breakdown(store: object, keys: tuple[str, ...], percentiles: bool, since: int | None, until: int | None,
              categories: Sequence[str]) -> dict[str, Any]:
    """Groups per combination of the keys: events and errors, sessions, and percentiles when asked."""
    if not isinstance(store, ReadBreakdown):
        raise ValidationError("--breakdown", "a store with breakdowns (ReadBreakdown)", type(store).__name__)
    if percentiles and "event_type" in keys:
        raise ValidationError("--percentiles", "session keys only (agent, mode, status): events have no duration "
                                               "per session", ",".join(keys))
    events: dict[tuple[str | None, ...], EventGroup] = {}
    sessions: dict[tuple[str | None, ...], SessionGroup] = {}
    if "status" not in keys:
        events = {g.key: g for g in store.event_breakdown(keys, since, until, categories)}
    if "event_type" not in keys:
        sessions = {g.key: g for g in store.session_breakdown(keys, since, until, categories, percentiles)}
    ordered = list(events) + [k for k in sessions if k not in events]
    groups = [_group(keys, key, events.get(key), sessions.get(key), percentiles) for key in ordered]
    return {"by": list(keys), "since": since, "until": until, "percentiles": list(BREAKDOWN_PERCENTILES)
            if percentiles else [], "groups": groups}


def _group(keys: tuple[str, ...], key: tuple[str | None, ...], ev: EventGroup | None, s: SessionGroup | None,
           percentiles: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"key": dict(zip(keys, key, strict=True))}
    if "status" not in keys:
        out["events"] = ev.events if ev else 0
        out["errors"] = ev.errors if ev else 0
    if "event_type" not in keys:
        out["sessions"] = s.sessions if s else 0
        out["active"] = s.active if s else 0
        out["ended"] = s.ended if s else 0
        out["avg_duration_ms"] = round(s.duration_sum / s.duration_count, 3) if s and s.duration_count else None
        if percentiles:
            out["duration_ms"] = {f"p{p}": (s.duration_percentiles.get(p) if s else None)
                                  for p in BREAKDOWN_PERCENTILES}
            out["events_per_session"] = {f"p{p}": (s.events_percentiles.get(p) if s else None)
                                         for p in BREAKDOWN_PERCENTILES}
    return out


def print_breakdown(document: Mapping[str, Any]) -> None:
    """Print the breakdown as one table (a row per group)."""
    keys = list(document["by"])
    rows: list[dict[str, Any]] = []
    columns = [*keys]
    for group in document["groups"]:
        row: dict[str, Any] = {k: v if v is not None else "(none)" for k, v in group["key"].items()}
        for name in ("events", "errors", "sessions", "active"):
            if name in group:
                row[name] = f"{group[name]:,}"
        if "avg_duration_ms" in group:
            row["avg duration"] = format_duration(group["avg_duration_ms"]) or "-"
        for label, values, render in (("dur", group.get("duration_ms"), format_duration),
                                      ("events", group.get("events_per_session"), _number)):
            for p, value in (values or {}).items():
                row[f"{label} {p}"] = "-" if value is None else render(value)
        rows.append(row)
    if rows:
        columns = list(rows[0])
    console().print()
    title = "By " + ", ".join(keys) if keys else "All"
    print_table(rows, columns, title=title, empty="No groups.")


def _number(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)
