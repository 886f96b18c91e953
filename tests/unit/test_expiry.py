"""Expiry rules: which reminder threshold applies, what "today" is in Oslo, what the stats say."""

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
DEFAULT = expiry.DEFAULT_THRESHOLDS

thresholds = st.lists(st.integers(1, 400), min_size=1, max_size=8, unique=True)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


@pytest.mark.parametrize(
    ("days", "expected"),
    [(45, None), (31, None), (30, 30), (20, 30), (15, 30), (14, 14), (10, 14), (8, 14),
     (7, 7), (3, 7), (1, 7), (0, 7), (-1, None), (-30, None)],
)  # fmt: skip
def test_the_smallest_threshold_not_below_the_days_left_applies(
    days: int, expected: int | None
) -> None:
    """With 30/14/7, each day count maps to the smallest threshold not below it, or none."""
    assert expiry.threshold_for(days, DEFAULT) == expected


@given(days=st.integers(-400, 400), values=thresholds)
def test_the_threshold_is_the_smallest_fitting_one(days: int, values: list[int]) -> None:
    """Any threshold chosen is in the set, not below the days left, and no smaller one fits."""
    chosen = expiry.threshold_for(days, values)
    fitting = [t for t in values if t >= days]
    if days < 0 or not fitting:
        assert chosen is None
    else:
        assert chosen in values
        assert chosen >= days
        assert all(t >= chosen for t in fitting)


@given(
    values=thresholds,
    start=st.integers(0, 120),
    nights=st.lists(st.booleans(), min_size=121, max_size=121),
)
def test_missed_nights_catch_up_but_never_send_a_larger_threshold_late(
    values: list[int], start: int, nights: list[bool]
) -> None:
    """Over nights with random ones missed, reminders go out largest first and never repeat."""
    sent: list[int] = []
    for days, ran in zip(range(start, -1, -1), nights, strict=False):
        threshold = expiry.threshold_for(days, values)
        if ran and threshold is not None and threshold not in sent:
            sent.append(threshold)
    assert sent == sorted(sent, reverse=True)
    assert len(sent) == len(set(sent))


def test_a_certificate_is_valid_through_its_expiry_date() -> None:
    """On the expiry date there are 0 days left and it is not expired; the next day it is."""
    expires = date(2026, 4, 1)
    assert expiry.days_left(expires, date(2026, 4, 1)) == 0
    assert not expiry.is_expired(expires, date(2026, 4, 1))
    assert expiry.is_expired(expires, date(2026, 4, 2))
    assert expiry.days_left(expires, date(2026, 3, 2)) == 30


def test_a_renewal_to_today_restores_but_one_to_yesterday_does_not() -> None:
    """A renewal to today is not in the past: today counts, matching the expiry rule."""
    today = date(2026, 4, 1)
    assert expiry.restores(today, today)
    assert expiry.restores(today + timedelta(days=365), today)
    assert not expiry.restores(today - timedelta(days=1), today)


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


@pytest.mark.parametrize(
    ("values", "valid"),
    [((30, 14, 7), True), ((1,), True), ((), False), ((7, 7), False), ((0, 7), False)],
)
def test_thresholds_are_a_nonempty_set_of_positive_days(
    values: tuple[int, ...], valid: bool
) -> None:
    """The Python check agrees with the database CHECK on org_settings."""
    assert expiry.valid_thresholds(values) is valid


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
