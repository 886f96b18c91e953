"""The overview's 24-hour chart: pure markup from hourly figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hlfsync.api import chart, models

START = datetime(2026, 12, 1, 0, tzinfo=UTC)


def _hours(**at: dict[str, float]) -> list[models.HourlyActivity]:
    hours = []
    for i in range(24):
        figures = {"succeeded": 0, "retried": 0, "throttled": 0, "dead_lettered": 0}
        figures.update(at.get(f"h{i}", {}))
        lag = figures.pop("lag", None)
        hours.append(models.HourlyActivity(
            hour=START + timedelta(hours=i), lag_p50_s=lag, lag_max_s=lag, **figures,
        ))  # fmt: skip
    return hours


def test_each_outcome_is_a_bar_stacked_to_scale() -> None:
    """Every non-zero outcome of an hour is one bar; the tallest hour reaches the axis top."""
    svg = chart.render(_hours(h3={"succeeded": 8, "dead_lettered": 2}, h5={"retried": 1}))
    assert svg.count('class="bar succeeded"') == 1
    assert svg.count('class="bar dead-lettered"') == 1
    assert svg.count('class="bar retried"') == 1
    assert ">10</text>" in svg  # axis maximum: 10 calls
    assert "11 calls to Dynamics, 2 dead-lettered" in svg


def test_the_lag_line_appears_only_with_lag_figures() -> None:
    """Hours with a measured lag become points of the line; with none there is no line."""
    assert "polyline" not in chart.render(_hours())
    svg = chart.render(_hours(h1={"succeeded": 1, "lag": 0.004}, h2={"succeeded": 1, "lag": 90}))
    assert svg.count('class="lag-dot"') == 2
    assert ">100 s</text>" in svg


def test_an_empty_day_still_draws_axes_and_says_so() -> None:
    """No calls at all: an empty chart with a summary, never a division by zero."""
    svg = chart.render(_hours())
    assert "<svg" in svg
    assert "0 calls to Dynamics" in svg
    assert "<rect" not in svg
