"""The calls allowed in flight after throttling: halved once per pause, won back slowly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlfsync.core.pacing import WINDOW, CallLimit, RequestWindow

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_unthrottled_the_limit_is_the_concurrency() -> None:
    limit = CallLimit(50)
    limit.on_success()
    assert limit.allowed == 50


def test_one_burst_of_429s_halves_once() -> None:
    limit = CallLimit(50)
    for n in range(30):  # thirty calls of one burst, all answered 429 within the pause
        limit.on_throttle(s(n * 0.001), s(1 + n * 0.001))
    assert limit.allowed == 25
    assert limit.pause_until == s(1.029)


def test_a_throttle_after_the_pause_halves_again_down_to_one() -> None:
    limit = CallLimit(8)
    for round_ in range(5):
        limit.on_throttle(s(round_ * 2), s(round_ * 2 + 1))
    assert [limit.allowed] == [1]


def test_successes_win_back_about_one_call_per_round() -> None:
    limit = CallLimit(50)
    limit.on_throttle(s(0), s(1))  # 25
    for _ in range(24):
        limit.on_success()
    assert limit.allowed == 25  # a round not yet complete
    for _ in range(2):
        limit.on_success()
    assert limit.allowed == 26
    for _ in range(10_000):
        limit.on_success()
    assert limit.allowed == 50


def test_a_ceiling_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        CallLimit(0)


@given(
    ceiling=st.integers(1, 200),
    events=st.lists(st.tuples(st.booleans(), st.floats(0, 5)), max_size=200),
)
def test_the_limit_stays_between_one_and_the_ceiling(
    ceiling: int, events: list[tuple[bool, float]]
) -> None:
    limit = CallLimit(ceiling)
    now = 0.0
    for throttled, gap in events:
        now += gap
        if throttled:
            limit.on_throttle(s(now), s(now + 1))
        else:
            limit.on_success()
        assert 1 <= limit.allowed <= ceiling


def test_the_request_window_is_spent_at_its_budget_and_frees_as_calls_age() -> None:
    window = RequestWindow(budget=3)
    window.note(s(0))
    window.note(s(10), calls=2)
    assert window.spent(s(10))
    # The first call leaves the window five minutes after it went out; the other two stay.
    assert not window.spent(T0 + WINDOW)
    assert len(window.sent) == 2
    window.note(T0 + WINDOW)
    assert window.spent(T0 + WINDOW + timedelta(seconds=9))
