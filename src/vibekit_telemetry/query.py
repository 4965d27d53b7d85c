"""Query, session and stats filters, parsed from keyword arguments in any accepted spelling."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from . import pagination
from .errors import ValidationError
from .events import EVENT_TYPES, SESSION_STATUSES, TelemetryEvent
from .timeparse import parse_time

if TYPE_CHECKING:
    from .store.base import Session

Order = Literal["asc", "desc"]
SessionSort = Literal["start_time", "duration", "event_count", "error_count"]
GROUP_BY_FIELDS: Final = ("category", "action", "event_type")
# What a sessions listing can be sorted by; ties go by start time, then id, in the same direction.
SESSION_SORT_KEYS: Final[tuple[SessionSort, ...]] = ("start_time", "duration", "event_count", "error_count")
_SORT_ALIASES: Final[dict[str, SessionSort]] = {
    "start": "start_time", "started": "start_time", "startTime": "start_time", "time": "start_time",
    "events": "event_count", "eventCount": "event_count", "errors": "error_count", "errorCount": "error_count"}
MAX_LIMIT: Final = 1_000_000


@dataclass(slots=True)
class QueryFilter:
    """Which events a query returns. Times are epoch milliseconds, inclusive."""

    since: int | None = None
    until: int | None = None
    session_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    contains: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    offset: int = 0
    order: Order = "asc"
    # Keyset pagination: only events after this (timestamp, event_id) in the order (from a `cursor`).
    after: tuple[int, str] | None = None


@dataclass(slots=True)
class SessionFilter:
    """Which sessions a sessions listing returns."""

    statuses: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    since: int | None = None
    until: int | None = None
    with_errors: bool | None = None
    limit: int | None = None
    offset: int = 0
    order: Order = "desc"
    # Sessions without a duration yet (still running) sort as the smallest: last when descending.
    sort_by: SessionSort = "start_time"
    # Keyset pagination: only sessions after this position in the order (from a `cursor`): the sort
    # key's value, start time and id (start time and id when sorted by start time).
    after: tuple[Any, ...] | None = None


# What each value of a sessions cursor's position is, per sort key (pagination.decode kinds).
_SESSION_POSITION: Final[dict[str, tuple[str, ...]]] = {
    "start_time": ("int", "str"), "duration": ("number?", "int", "str"),
    "event_count": ("int", "int", "str"), "error_count": ("int", "int", "str")}


def session_cursor(session: Session, f: SessionFilter) -> str:
    """The cursor of the page after `session`, the last of a page listed with `f`."""
    position: list[Any] = [session.start_time, session.id]
    if f.sort_by != "start_time":
        value = getattr(session, f.sort_by)
        position.insert(0, None if value is None else float(value) if f.sort_by == "duration" else value)
    return pagination.encode("sessions", f.sort_by, f.order, position)


def event_cursor(event: TelemetryEvent, f: QueryFilter) -> str:
    """The cursor of the page after `event`, the last of a page queried with `f`."""
    return pagination.encode("events", "timestamp", f.order, [event.timestamp, event.event_id])


def _cursor_position(cursor: Any, offset: int, listing: str, sort: str, order: str,
                     kinds: tuple[str, ...]) -> tuple[Any, ...] | None:
    if cursor is None:
        return None
    if offset:
        raise ValidationError("cursor", "either a cursor or an offset, not both", cursor)
    return pagination.decode(cursor, listing, sort, order, kinds)


@dataclass(slots=True)
class StatsFilter:
    """The slice of events stats are computed over, and the breakdown asked for."""

    since: int | None = None
    until: int | None = None
    categories: list[str] = field(default_factory=list)
    group_by: str | None = None


def _strings(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(value)
        for item in items:
            if not isinstance(item, str) or not item:
                raise ValidationError(name, "a string or a list of non-empty strings", item)
        return items
    raise ValidationError(name, "a string or a list of strings", value)


def _int(name: str, value: Any, minimum: int, maximum: int = MAX_LIMIT) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationError(name, f"an integer from {minimum} to {maximum}", value)
    return value


def _order(value: Any, default: Order) -> Order:
    if value is None:
        return default
    text = str(value).lower().removeprefix("timestamp_").removeprefix("start_time_")
    if text in ("asc", "desc"):
        return "asc" if text == "asc" else "desc"
    raise ValidationError("order", "asc, desc, timestamp_asc or timestamp_desc", value)


def _sort_key(value: Any) -> SessionSort:
    if value is None:
        return "start_time"
    if isinstance(value, str):
        key = _SORT_ALIASES.get(value, value)
        for known in SESSION_SORT_KEYS:
            if key == known:
                return known
    raise ValidationError("sort", "one of " + ", ".join(SESSION_SORT_KEYS), value)


def _pick(kwargs: dict[str, Any], *names: str) -> Any:
    """Pop the first of several spellings of one filter; two different spellings at once is an error."""
    found = [(n, kwargs.pop(n)) for n in names if n in kwargs]
    found = [(n, v) for n, v in found if v is not None]
    if len(found) > 1 and any(v != found[0][1] for _, v in found[1:]):
        raise ValidationError(found[1][0], f"only one of {', '.join(names)}", found[1][1])
    return found[0][1] if found else None


def _time_range(kwargs: dict[str, Any]) -> tuple[int | None, int | None]:
    since = _pick(kwargs, "since", "from_", "from", "start", "from_time", "fromTime")
    until = _pick(kwargs, "until", "to", "end", "to_time", "toTime")
    time_range = _pick(kwargs, "time_range", "timeRange")
    if time_range is not None:
        if not isinstance(time_range, Mapping):
            raise ValidationError("time_range", "a dict with start and/or end", time_range)
        since = since if since is not None else time_range.get("start")
        until = until if until is not None else time_range.get("end")
    since_ms, until_ms = parse_time(since, "since"), parse_time(until, "until")
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise ValidationError("until", "a time after since", until)
    return since_ms, until_ms


def _reject_unknown(kind: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        name = next(iter(kwargs))
        raise ValidationError(name, f"a known {kind} filter", kwargs[name])


def parse_query(filter_: QueryFilter | Mapping[str, Any] | None = None, **kwargs: Any) -> QueryFilter:
    """Build a QueryFilter from a filter, a dict, or keyword arguments (seeds' spellings accepted)."""
    if isinstance(filter_, QueryFilter):
        return filter_
    args = {**(dict(filter_) if filter_ else {}), **kwargs}
    since, until = _time_range(args)
    event_types = _strings("event_type", _pick(args, "event_type", "eventType", "type", "event_types",
                                               "eventTypes"))
    for event_type in event_types:
        if event_type not in EVENT_TYPES:
            raise ValidationError("event_type", "one of " + ", ".join(sorted(EVENT_TYPES)), event_type)
    metadata = _pick(args, "metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError("metadata", "a dict of metadata key to value", metadata)
    contains = _pick(args, "contains", "search", "text")
    if contains is not None and (not isinstance(contains, str) or not contains):
        raise ValidationError("contains", "a non-empty string", contains)
    offset = _int("offset", _pick(args, "offset"), 0, 2**62) or 0
    order = _order(_pick(args, "order", "order_by", "orderBy"), "asc")
    after = _cursor_position(_pick(args, "cursor"), offset, "events", "timestamp", order, ("int", "str"))
    result = QueryFilter(
        since=since, until=until,
        session_ids=_strings("session_id", _pick(args, "session_id", "sessionId", "session", "session_ids",
                                                 "sessionIds", "sessions")),
        event_types=event_types,
        categories=_strings("category", _pick(args, "category", "agent_type", "agentType", "agent",
                                              "categories", "agent_types", "agentTypes")),
        actions=_strings("action", _pick(args, "action", "mode", "actions")),
        contains=contains,
        metadata=dict(metadata or {}),
        limit=_int("limit", _pick(args, "limit"), 0),
        offset=offset, order=order, after=(after[0], after[1]) if after else None,
    )
    _reject_unknown("query", args)
    return result


def parse_session_filter(filter_: SessionFilter | Mapping[str, Any] | None = None,
                         **kwargs: Any) -> SessionFilter:
    """Build a SessionFilter from a filter, a dict, or keyword arguments."""
    if isinstance(filter_, SessionFilter):
        return filter_
    args = {**(dict(filter_) if filter_ else {}), **kwargs}
    since, until = _time_range(args)
    statuses = _strings("status", _pick(args, "status", "statuses"))
    for status in statuses:
        if status not in SESSION_STATUSES:
            raise ValidationError("status", "one of " + ", ".join(SESSION_STATUSES), status)
    with_errors = _pick(args, "with_errors", "withErrors", "has_errors", "errors")
    if with_errors is not None and not isinstance(with_errors, bool):
        raise ValidationError("with_errors", "true or false", with_errors)
    offset = _int("offset", _pick(args, "offset"), 0, 2**62) or 0
    order = _order(_pick(args, "order", "order_by", "orderBy"), "desc")
    sort_by = _sort_key(_pick(args, "sort", "sort_by", "sortBy"))
    after = _cursor_position(_pick(args, "cursor"), offset, "sessions", sort_by, order, _SESSION_POSITION[sort_by])
    result = SessionFilter(
        statuses=statuses,
        categories=_strings("category", _pick(args, "category", "agent_type", "agentType", "agent",
                                              "categories")),
        since=since, until=until, with_errors=with_errors,
        limit=_int("limit", _pick(args, "limit"), 0),
        offset=offset, order=order, sort_by=sort_by, after=after,
    )
    _reject_unknown("sessions", args)
    return result


def parse_stats_filter(filter_: StatsFilter | Mapping[str, Any] | None = None, **kwargs: Any) -> StatsFilter:
    """Build a StatsFilter from a filter, a dict, or keyword arguments."""
    if isinstance(filter_, StatsFilter):
        return filter_
    args = {**(dict(filter_) if filter_ else {}), **kwargs}
    since, until = _time_range(args)
    group_by = _pick(args, "group_by", "groupBy")
    aliases = {"agent_type": "category", "agentType": "category", "agent": "category", "mode": "action",
               "eventType": "event_type", "type": "event_type"}
    if group_by is not None:
        group_by = aliases.get(group_by, group_by)
        if group_by not in GROUP_BY_FIELDS:
            raise ValidationError("group_by", "one of " + ", ".join(GROUP_BY_FIELDS), group_by)
    result = StatsFilter(
        since=since, until=until, group_by=group_by,
        categories=_strings("category", _pick(args, "category", "agent_type", "agentType", "agent",
                                              "categories")),
    )
    _reject_unknown("stats", args)
    return result
