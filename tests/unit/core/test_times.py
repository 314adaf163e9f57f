"""Time conversions: Unix seconds, aware UTC datetimes and RFC 3339 text, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rollguard.core.times import (
    api_seconds,
    format_seconds,
    format_time,
    parse_timestamp,
    to_datetime,
    to_seconds,
)

NOON = 1714564800.0  # 2024-05-01T12:00:00Z


def test_unix_seconds_become_an_aware_utc_datetime_and_back() -> None:
    moment = to_datetime(NOON + 0.25)
    assert moment == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert to_seconds(moment) == NOON + 0.25


def test_a_datetime_without_a_zone_is_read_as_utc() -> None:
    assert to_seconds(datetime(2024, 5, 1, 12)) == NOON
    assert to_seconds(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == NOON


def test_api_text_writes_utc_as_z_and_keeps_the_fraction_it_holds() -> None:
    assert format_time(to_datetime(NOON)) == "2024-05-01T12:00:00Z"
    assert format_time(to_datetime(NOON + 0.25)) == "2024-05-01T12:00:00.250000Z"


def test_report_text_shows_milliseconds_only_when_there_is_a_fraction() -> None:
    assert format_seconds(NOON) == "2024-05-01T12:00:00Z"
    assert format_seconds(NOON + 0.25) == "2024-05-01T12:00:00.250Z"
    assert parse_timestamp(format_seconds(NOON + 0.25)) == NOON + 0.25


def test_api_timestamps_are_read_leniently_and_unreadable_ones_are_none() -> None:
    assert api_seconds("2024-05-01T12:00:00Z") == NOON
    assert api_seconds("2024-05-01T12:00:00z") == NOON
    assert api_seconds("2024-05-01T12:00:00") == NOON  # no zone: UTC
    assert api_seconds(datetime(2024, 5, 1, 12, tzinfo=UTC)) == NOON
    assert api_seconds("yesterday") is None
    assert api_seconds("") is None
    assert api_seconds(None) is None


def test_user_timestamps_need_a_zone_and_say_why_they_are_refused() -> None:
    with pytest.raises(ValueError, match="not Unix seconds or an RFC 3339"):
        parse_timestamp("2024-05-01T12:00:00")
    with pytest.raises(ValueError, match="not a finite number"):
        parse_timestamp("inf")
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_timestamp(True)
