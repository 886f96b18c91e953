"""The Python side of the expiry check: what "today" is in Oslo, and what the stats say.

The rules themselves run in SQL and are tested there: tests/integration/expiry/test_rules.py.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlfsync import testing
from hlfsync.core import expiry

OSLO = ZoneInfo("Europe/Oslo")

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@pytest.mark.parametrize(
    ("instant", "oslo_date"),
    [
        # 2026: CET (UTC+1) until 29 March 01:00 UTC, CEST (UTC+2) until 25 October 01:00 UTC.
        (datetime(2026, 3, 28, 22, 30, tzinfo=UTC), date(2026, 3, 28)),  # 23:30 CET
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 29)),  # 00:30 CET
        (datetime(2026, 3, 30, 22, 30, tzinfo=UTC), date(2026, 3, 31)),  # 00:30 CEST
        (datetime(2026, 3, 31, 21, 30, tzinfo=UTC), date(2026, 3, 31)),  # 23:30 CEST
        (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), date(2026, 4, 1)),  # 00:30 CEST
        (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), date(2026, 4, 1)),  # 01:30 CEST
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # 00:30 CEST
        (datetime(2026, 10, 25, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # 23:30 CET
    ],
)
def test_today_is_the_date_in_oslo_not_in_utc(instant: datetime, oslo_date: date) -> None:
    """The date flips at Oslo midnight: 22:00 UTC in summer time, 23:00 UTC in winter."""
    assert expiry.local_date(instant, OSLO) == oslo_date


def test_the_2026_dst_changes_fall_on_the_last_sundays_of_march_and_october() -> None:
    """Oslo's offset moves at 01:00 UTC on 29 March and 25 October 2026."""
    second = timedelta(seconds=1)
    spring = datetime(2026, 3, 29, 1, tzinfo=UTC)
    autumn = datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert (spring - second).astimezone(OSLO).utcoffset() == timedelta(hours=1)
    assert spring.astimezone(OSLO).utcoffset() == timedelta(hours=2)
    assert (autumn - second).astimezone(OSLO).utcoffset() == timedelta(hours=2)
    assert autumn.astimezone(OSLO).utcoffset() == timedelta(hours=1)
    assert spring.date().weekday() == autumn.date().weekday() == 6


def test_the_date_flips_as_a_fake_clock_crosses_oslo_midnight() -> None:
    """One second before 22:00 UTC on 31 March it is still 31 March in Oslo; at 22:00, 1 April."""
    clock = testing.FakeClock(datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC))
    assert expiry.local_date(clock.now(), OSLO) == date(2026, 3, 31)
    clock.advance(1)
    assert expiry.local_date(clock.now(), OSLO) == date(2026, 4, 1)


@given(instant=instants)
def test_oslo_is_never_behind_utc_and_at_most_one_day_ahead(instant: datetime) -> None:
    """Oslo's date is the UTC date, or the next one from 22:00 or 23:00 UTC on."""
    local = expiry.local_date(instant, OSLO)
    offset = instant.astimezone(OSLO).utcoffset()
    assert offset is not None
    offset_h = int(offset.total_seconds() // 3600)
    assert offset_h in (1, 2)
    expected = instant.date() + timedelta(days=1 if instant.hour >= 24 - offset_h else 0)
    assert local == expected


def test_a_naive_instant_is_refused() -> None:
    """Guessing a naive datetime's zone is how a check runs a day off; it raises instead."""
    with pytest.raises(ValueError, match="naive"):
        expiry.local_date(datetime(2026, 4, 1, 2), OSLO)


def test_check_stats_are_json_ready_with_totals() -> None:
    """Stats serialise to JSON with string threshold keys, largest first, and a total."""
    stats = expiry.CheckStats(
        today=date(2026, 4, 1), reminders={7: 2, 30: 5}, reminder_alerts=7, paused=3
    )
    data = json.loads(json.dumps(stats.as_dict()))
    assert data["today"] == "2026-04-01"
    assert list(data["reminders"].items()) == [("30", 5), ("7", 2)]
    assert data["reminders_total"] == 7
    assert data["paused"] == 3
