"""The shipped FakeClock: still until moved, aware UTC only, forward with advance()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hlfsync import testing
from hlfsync.core import clock


def test_fake_clock_stands_still_until_moved() -> None:
    """now() answers the same instant until a test moves the clock."""
    fake = testing.FakeClock()
    assert fake.now() == fake.now() == testing.EPOCH


def test_advance_takes_seconds_or_a_timedelta() -> None:
    """advance() moves forward by seconds or a timedelta and returns the new now."""
    fake = testing.FakeClock()
    assert fake.advance(1.5) == testing.EPOCH + timedelta(seconds=1.5)
    assert fake.advance(timedelta(minutes=1)) == testing.EPOCH + timedelta(seconds=61.5)
    assert fake.now() == testing.EPOCH + timedelta(seconds=61.5)


def test_advance_refuses_to_go_back() -> None:
    """advance() only moves forward; going back is set()'s job."""
    with pytest.raises(ValueError, match="only moves forward"):
        testing.FakeClock().advance(-1)


def test_set_jumps_anywhere_and_normalises_to_utc() -> None:
    """set() jumps to any aware instant, back included, and keeps it in UTC."""
    fake = testing.FakeClock()
    oslo_winter = timezone(timedelta(hours=1))
    assert fake.set(datetime(2024, 12, 31, 1, 0, tzinfo=oslo_winter)) == datetime(
        2024, 12, 31, 0, 0, tzinfo=UTC
    )
    assert fake.now().tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    """A naive datetime would compare wrongly with stored timestamps, so it is refused."""
    with pytest.raises(ValueError, match="needs an aware datetime"):
        testing.FakeClock(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="needs an aware datetime"):
        testing.FakeClock().set(datetime(2025, 1, 1))


def test_fake_clock_is_a_clock() -> None:
    """FakeClock satisfies core.clock.Clock, so it can be injected wherever a Clock is wanted."""
    fake: clock.Clock = testing.FakeClock()
    assert fake.now() == testing.EPOCH
