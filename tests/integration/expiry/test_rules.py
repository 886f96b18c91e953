"""The expiry rules where they run, in the SQL of 0006_expiry.sql: which reminder is due, when a
certificate has expired, which threshold sets are valid, what "today" is, what a renewal restores.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlfsync.core import expiry as python_side
from hlfsync.db import expiry
from tests.integration.expiry.world import Conn, check, mentor, queue, status, world

DEFAULT = [30, 14, 7]
thresholds = st.lists(st.integers(1, 400), min_size=1, max_size=8, unique=True)
function_scoped = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def threshold(conn: Conn, days: int, values: list[int]) -> int | None:
    row = conn.execute("SELECT expiry_threshold(%s, %s)", [days, values]).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("days", "expected"),
    [(45, None), (31, None), (30, 30), (20, 30), (15, 30), (14, 14), (10, 14), (8, 14),
     (7, 7), (3, 7), (1, 7), (0, 7), (-1, None), (-30, None)],
)  # fmt: skip
def test_the_smallest_threshold_not_below_the_days_left_applies(
    conn: Conn, days: int, expected: int | None
) -> None:
    """With 30/14/7, each day count maps to the smallest threshold not below it, or none."""
    assert threshold(conn, days, DEFAULT) == expected


@function_scoped
@given(days=st.integers(-400, 400), values=thresholds)
def test_the_threshold_is_the_smallest_fitting_one(
    conn: Conn, days: int, values: list[int]
) -> None:
    """Any threshold chosen is in the set, not below the days left, and no smaller one fits."""
    chosen = threshold(conn, days, values)
    fitting = [t for t in values if t >= days]
    if days < 0 or not fitting:
        assert chosen is None
    else:
        assert chosen == min(fitting)


@function_scoped
@given(
    values=thresholds,
    start=st.integers(0, 120),
    nights=st.lists(st.booleans(), min_size=121, max_size=121),
)
def test_missed_nights_catch_up_but_never_send_a_larger_threshold_late(
    conn: Conn, values: list[int], start: int, nights: list[bool]
) -> None:
    """Over nights with random ones missed, reminders go out largest first and never repeat."""
    due = conn.execute(
        "SELECT expiry_threshold(d, %s) FROM generate_series(%s, 0, -1) AS d", [values, start]
    ).fetchall()
    sent: list[int] = []
    for (chosen,), ran in zip(due, nights, strict=False):
        if ran and chosen is not None and chosen not in sent:
            sent.append(chosen)
    assert sent == sorted(sent, reverse=True)
    assert len(sent) == len(set(sent))


def test_a_certificate_is_valid_through_its_expiry_date(conn: Conn) -> None:
    """Expiring today: a 7-day reminder, no pause; expired yesterday: paused, no reminder."""
    w = world(conn)
    today_ = mentor(conn, w, 0)
    yesterday = mentor(conn, w, -1)
    check(conn)
    assert status(conn, today_) == ("active", None)
    assert status(conn, yesterday) == ("paused", "certification_expired")
    sent = conn.execute(
        "SELECT mentor_id, days_left FROM cert_expiry_reminders ORDER BY days_left"
    ).fetchall()
    assert sent == [(today_, 0)]


@pytest.mark.parametrize(
    ("values", "valid"),
    [([30, 14, 7], True), ([1], True), ([], False), ([7, 7], False), ([0, 7], False)],
)
def test_thresholds_are_a_nonempty_set_of_positive_days(
    conn: Conn, values: list[int], valid: bool
) -> None:
    """The CHECK on org_settings.reminder_threshold_days takes exactly the valid sets."""
    world(conn)
    statement = "UPDATE org_settings SET reminder_threshold_days = %s"
    if valid:
        conn.execute(statement, [values])
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(statement, [values])


def test_a_renewal_to_today_restores(conn: Conn) -> None:
    """A renewal to today is not in the past: today counts, matching the expiry rule."""
    m = mentor(conn, world(conn), -30, status="paused", reason="certification_expired",
               today=date.today())  # fmt: skip
    # Judged in UTC, the zone of date.today() on the test machine's clock.
    expiry.renew(conn, m, datetime.now(UTC).date(), "coordinator:7", timezone="UTC")
    assert status(conn, m) == ("active", "certification_renewed")
    assert queue(conn, m) == [("restore", "pending")]


@function_scoped
@given(
    instant=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(["Europe/Oslo", "UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"]),
)
def test_python_and_sql_agree_on_what_today_is(conn: Conn, instant: datetime, zone: str) -> None:
    """core.expiry.local_date (the scheduler's today) is the SQL's expiry_today (the triggers')."""
    with conn.transaction():
        conn.execute("SELECT set_config('hlfsync.timezone', %s, true)", [zone])
        row = conn.execute("SELECT expiry_today(%s)", [instant]).fetchone()
    assert row is not None
    assert row[0] == python_side.local_date(instant, ZoneInfo(zone))
