"""Time expressions: epoch ms, ISO dates and phrases, with clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vibekit_telemetry import ValidationError
from vibekit_telemetry.timeparse import duration_ms, parse_time

NOW = int(datetime(2024, 3, 10, 15, 30, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
DAY = 24 * HOUR


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW),
    ("1 hour ago", NOW - HOUR),
    ("1h", NOW - HOUR),
    ("7d", NOW - 7 * DAY),
    ("30 minutes ago", NOW - 30 * 60_000),
    ("an hour ago", NOW - HOUR),
    ("last week", NOW - 7 * DAY),
    ("last 2 days", NOW - 2 * DAY),
    ("today", int(datetime(2024, 3, 10, tzinfo=UTC).timestamp() * 1000)),
    ("yesterday", int(datetime(2024, 3, 9, tzinfo=UTC).timestamp() * 1000)),
    ("2024-01-31", int(datetime(2024, 1, 31, tzinfo=UTC).timestamp() * 1000)),
    ("2024-01-31T10:00:00Z", int(datetime(2024, 1, 31, 10, tzinfo=UTC).timestamp() * 1000)),
    ("1700000000000", 1_700_000_000_000),
])
def test_phrases(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW) == expected


@pytest.mark.parametrize("bad", ["next blursday", "", "yesterdayish", "-5", "7 parsecs ago", "last fortnight",
                                 "99999999999999999999999", 10**23, -1, float("nan")])
def test_bad_phrases_name_the_field(bad: str | int | float) -> None:
    with pytest.raises(ValidationError) as info:
        parse_time(bad, "from", now_ms=NOW)
    assert info.value.field == "from"
    assert "yesterday" in str(info.value)  # the message shows what would have worked


def test_huge_epoch_in_the_cli_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vibekit_telemetry.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "t.db"), "dump", "--from", "99999999999999999999999"])
    assert result.exit_code == 2 and "--from" in result.output


def test_durations() -> None:
    assert duration_ms("30d") == 30 * DAY
    assert duration_ms("1 month") == 30 * DAY
    assert duration_ms("2 weeks") == 14 * DAY
    with pytest.raises(ValidationError):
        duration_ms("soon", "older_than")


@given(st.integers(min_value=0, max_value=2**53))
def test_epoch_ms_round_trip(value: int) -> None:
    assert parse_time(value) == value
    assert parse_time(str(value)) == value


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_iso_round_trip(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parse_time(moment.isoformat()) == int(moment.timestamp() * 1000)


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_ago_is_before_now(amount: int, unit: str) -> None:
    result = parse_time(f"{amount}{unit}", now_ms=NOW)
    assert result is not None and result < NOW
    assert NOW - result == duration_ms(f"{amount}{unit}")
