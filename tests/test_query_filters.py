"""Query, session and stats filters accept the seeds' spellings and reject bad values by name."""

from __future__ import annotations

import pytest

from vibekit_telemetry import ValidationError
from vibekit_telemetry.query import parse_query, parse_session_filter, parse_stats_filter


def test_seed_spellings() -> None:
    f = parse_query(agentType="claude", sessionId="s1", eventType="stream", mode="code", orderBy="timestamp_desc",
                    from_=1_700_000_000_000, to=1_700_000_100_000, limit=10, offset=5)
    assert f.categories == ["claude"] and f.session_ids == ["s1"] and f.event_types == ["stream"]
    assert f.actions == ["code"] and f.order == "desc" and (f.limit, f.offset) == (10, 5)
    assert (f.since, f.until) == (1_700_000_000_000, 1_700_000_100_000)


def test_time_range_dict_and_lists() -> None:
    f = parse_query({"timeRange": {"start": 1_700_000_000_000}, "agentTypes": ["a", "b"], "sessionIds": ["x"]})
    assert f.since == 1_700_000_000_000 and f.categories == ["a", "b"] and f.session_ids == ["x"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"event_type": "nope"}, "event_type"),
    ({"limit": -1}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"order": "sideways"}, "order"),
    ({"since": "next blursday"}, "since"),
    ({"since": "now", "until": "1 day ago"}, "until"),
    ({"colour": "red"}, "colour"),
    ({"metadata": "x=1"}, "metadata"),
    ({"category": "a", "agent_type": "b"}, "agent_type"),
])
def test_bad_query_filters(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_query(**kwargs)
    assert info.value.field == field


def test_session_filter() -> None:
    f = parse_session_filter(status="active", agent="claude", with_errors=True, since="1h")
    assert f.statuses == ["active"] and f.categories == ["claude"] and f.with_errors is True
    assert f.since is not None
    with pytest.raises(ValidationError) as info:
        parse_session_filter(status="sleeping")
    assert info.value.field == "status"


def test_stats_filter_group_by_aliases() -> None:
    assert parse_stats_filter(group_by="agentType").group_by == "category"
    assert parse_stats_filter(groupBy="mode").group_by == "action"
    with pytest.raises(ValidationError) as info:
        parse_stats_filter(group_by="colour")
    assert info.value.field == "group_by"
