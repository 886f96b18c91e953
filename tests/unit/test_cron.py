"""Cron slots in Oslo time: the due slot, the one missed slot a restart runs, DST, the wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlfsync import testing
from hlfsync.core import cron

OSLO = ZoneInfo("Europe/Oslo")
NIGHTLY = "0 2 * * *"
CRONS = [NIGHTLY, "30 2 * * *", "0 * * * *", "*/5 * * * *", "17 * * * *", "0 3 * * 1", "@daily"]

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_nightly_slot_is_two_in_the_morning_oslo_time() -> None:
    """At 15:00 UTC on 1 April the due slot is 02:00 CEST that day, 00:00 UTC."""
    assert cron.due_slot(NIGHTLY, OSLO, utc(2026, 4, 1, 15)) == utc(2026, 4, 1, 0)
    assert cron.next_slot(NIGHTLY, OSLO, utc(2026, 4, 1, 15)) == utc(2026, 4, 2, 0)


def test_a_slot_exactly_at_now_is_due_now() -> None:
    """At the slot's own instant it is the due slot, and the next one is a day later."""
    slot = utc(2026, 4, 1, 0)
    assert cron.due_slot(NIGHTLY, OSLO, slot) == slot
    assert cron.due_slot(NIGHTLY, OSLO, slot - timedelta(microseconds=1)) == utc(2026, 3, 31, 0)
    assert cron.next_slot(NIGHTLY, OSLO, slot) == utc(2026, 4, 2, 0)


@given(now=instants, expr=st.sampled_from(CRONS))
def test_the_due_slot_is_the_latest_at_or_before_now(now: datetime, expr: str) -> None:
    """due <= now < next, and no slot lies between them."""
    due = cron.due_slot(expr, OSLO, now)
    following = cron.next_slot(expr, OSLO, now)
    assert due <= now < following
    assert cron.next_slot(expr, OSLO, due) == following
    assert cron.due_slot(expr, OSLO, following) == following


def test_the_nightly_job_runs_once_on_every_day_of_2026() -> None:
    """365 consecutive slots fall on 365 distinct Oslo dates, across both DST changes."""
    slots = []
    at = utc(2025, 12, 31, 12)
    for _ in range(365):
        at = cron.next_slot(NIGHTLY, OSLO, at)
        slots.append(at)
    dates = [slot.astimezone(OSLO).date() for slot in slots]
    assert len(set(dates)) == 365
    assert dates[0].isoformat() == "2026-01-01"
    assert dates[-1].isoformat() == "2026-12-31"


def test_the_spring_gap_moves_the_nightly_slot_to_the_clock_change() -> None:
    """On 29 March 2026 02:00 does not exist in Oslo; the slot runs at 03:00 CEST, 01:00 UTC."""
    assert cron.next_slot(NIGHTLY, OSLO, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert cron.next_slot(NIGHTLY, OSLO, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0)


def test_the_repeated_autumn_hour_runs_a_nightly_job_once_and_an_hourly_one_twice() -> None:
    """On 25 October 2026 02:00 happens twice: a named-hour job runs at the first only."""
    assert cron.next_slot(NIGHTLY, OSLO, utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0)
    assert cron.next_slot(NIGHTLY, OSLO, utc(2026, 10, 25, 0)) == utc(2026, 10, 26, 1)
    assert cron.due_slot(NIGHTLY, OSLO, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 0)
    hourly = "0 * * * *"
    assert cron.next_slot(hourly, OSLO, utc(2026, 10, 25, 0)) == utc(2026, 10, 25, 1)


def test_a_slot_missed_during_downtime_runs_once_at_start() -> None:
    """Three nights missed: the latest slot runs at start, the older ones never do."""
    now = utc(2026, 4, 4, 13)
    last = utc(2026, 4, 1, 0)
    assert cron.slot_to_run(NIGHTLY, OSLO, now, last) == utc(2026, 4, 4, 0)
    assert cron.slot_to_run(NIGHTLY, OSLO, now, utc(2026, 4, 4, 0)) is None


def test_a_job_never_run_runs_its_latest_slot_at_start() -> None:
    """With nothing recorded, the latest slot is due at once."""
    assert cron.slot_to_run(NIGHTLY, OSLO, utc(2026, 4, 4, 13), None) == utc(2026, 4, 4, 0)


@given(now=instants, expr=st.sampled_from(CRONS), back=st.integers(0, 10_000))
def test_a_recorded_slot_is_never_run_again(now: datetime, expr: str, back: int) -> None:
    """Only a slot later than the last recorded one runs, and it is always the due slot."""
    due = cron.due_slot(expr, OSLO, now)
    last = due - timedelta(minutes=back)
    chosen = cron.slot_to_run(expr, OSLO, now, last)
    assert chosen == (due if back else None)


def test_the_wait_is_until_the_next_slot_of_any_job_capped() -> None:
    """30 s before the nightly slot the wait is 30 s; far from any slot it is the cap."""
    clock = testing.FakeClock(utc(2026, 4, 1, 0) - timedelta(seconds=30))
    assert cron.wait_seconds([NIGHTLY], OSLO, clock.now()) == 30.0
    clock.advance(31)
    assert cron.wait_seconds([NIGHTLY], OSLO, clock.now()) == 60.0
    assert cron.wait_seconds([NIGHTLY, "*/5 * * * *"], OSLO, clock.now(), cap_s=600) == 299.0
    assert cron.wait_seconds([], OSLO, clock.now()) == 60.0


def test_bad_input_is_refused() -> None:
    """A malformed cron expression and a naive instant both raise ValueError."""
    with pytest.raises(ValueError, match="not a cron expression"):
        cron.validate("every night")
    with pytest.raises(ValueError, match="naive"):
        cron.due_slot(NIGHTLY, OSLO, datetime(2026, 4, 1))
