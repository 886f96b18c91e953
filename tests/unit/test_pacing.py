"""Pacing: calls in flight after throttling (halved once per pause, won back slowly), the
request window, and background work giving way to a late live loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlfsync.core.pacing import WINDOW, CallLimit, LagShare, RequestWindow

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


# --- background work beside the live loop ------------------------------------------------------


def test_background_work_halves_while_the_live_loop_is_late_once_per_period() -> None:
    share = LagShare(16)
    assert share.allowed(0.0, 0.050) == 8
    assert share.allowed(0.01, 0.050) == 8  # within the period: the same lesson
    assert share.allowed(0.06, 0.050) == 4
    assert share.allowed(0.12, 0.050) == 2
    assert share.allowed(0.18, 0.050) == 1
    assert share.allowed(0.24, 0.050) == 1  # never below one: the work still gets done


def test_background_work_is_won_back_one_at_a_time_up_to_the_ceiling() -> None:
    share = LagShare(4)
    share.allowed(0.0, 0.050)
    assert [share.allowed(0.06 * n, 0.0) for n in range(1, 5)] == [3, 4, 4, 4]


def test_a_lag_at_the_threshold_does_not_count_as_late() -> None:
    share = LagShare(4)
    assert share.allowed(0.0, share.yield_lag_s) == 4


def test_a_background_ceiling_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LagShare(0)


@given(
    ceiling=st.integers(1, 64),
    lags=st.lists(st.floats(0, 1, allow_nan=False), max_size=60),
)
def test_the_background_share_stays_between_one_and_the_ceiling(
    ceiling: int, lags: list[float]
) -> None:
    share = LagShare(ceiling)
    for n, lag in enumerate(lags):
        assert 1 <= share.allowed(n * 0.05, lag) <= ceiling
