"""Reminders on real PostgreSQL: the threshold rule, catch-up, per-organisation thresholds,
and one reminder and one alert per threshold and period however often the check runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlfsync.db import expiry
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify import payloads
from tests.integration.expiry.world import (
    TODAY,
    Conn,
    alerts,
    check,
    deliveries,
    mentor,
    snapshot,
    thresholds_sent,
    until_blocked,
    world,
)


def smallest_not_below(days: int, values: list[int]) -> int | None:
    """The rule as the spec states it: the smallest threshold not below the days left, none
    once expired (the SQL's `expiry_threshold` is the one that runs)."""
    fitting = [t for t in values if t >= days]
    return min(fitting) if days >= 0 and fitting else None


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(31, []), (30, [30]), (20, [30]), (14, [14]), (10, [14]), (7, [7]), (3, [7]), (0, [7])],
)
def test_each_threshold_is_sent_for_its_days_left(
    conn: Conn, days_left: int, expected: list[int]
) -> None:
    """A certificate with N days left gets the smallest threshold not below N, once."""
    m = mentor(conn, world(conn), days_left)
    check(conn)
    assert thresholds_sent(conn, m) == expected


def test_a_missed_night_is_caught_up_but_a_passed_threshold_is_not(conn: Conn) -> None:
    """20 left sends the 30-day reminder; at 3 left only the 7-day one, never the 14 late."""
    w = world(conn)
    m = mentor(conn, w, 20)
    check(conn)
    assert thresholds_sent(conn, m) == [30]
    check(conn, TODAY + timedelta(days=2))  # 18 left: the 30 is already sent
    assert thresholds_sent(conn, m) == [30]
    check(conn, TODAY + timedelta(days=17))  # 3 left: nights at 14..8 left were missed
    assert thresholds_sent(conn, m) == [30, 7]


def test_a_reminder_alerts_the_chapter_coordinators_with_a_minimal_payload(conn: Conn) -> None:
    """Each reminder inserted raises one cert_reminder alert, delivered to the coordinator."""
    w = world(conn)
    m = mentor(conn, w, 14)
    stats = check(conn)
    assert stats["reminders"] == {"14": 1}
    assert stats["reminder_alerts"] == 1
    [(kind, key, alert_mentor, payload)] = alerts(conn)
    assert (kind, alert_mentor) == ("cert_reminder", m)
    assert key == f"{m}:14:{(TODAY + timedelta(days=14)).isoformat()}"
    assert payload == payloads.build_reminder_data(m, 14)
    assert deliveries(conn, "cert_reminder") == [(key, "tok-coord-HLF")]


def test_without_coordinators_the_organisation_admins_are_alerted(conn: Conn) -> None:
    """A mentor whose chapters have no coordinator: the reminder goes to the admins."""
    w = world(conn)
    conn.execute("DELETE FROM coordinator_chapters")
    mentor(conn, w, 7)
    check(conn)
    assert [token for _, token in deliveries(conn, "cert_reminder")] == ["tok-admin-HLF"]


@pytest.mark.parametrize(("status", "reason"), [("paused", "manual"), ("inactive", None)])
def test_only_active_mentors_are_reminded(conn: Conn, status: str, reason: str | None) -> None:
    """A paused or inactive mentor is not listed, so gets no reminder."""
    m = mentor(conn, world(conn), 7, status=status, reason=reason)
    assert check(conn)["reminders_total"] == 0
    assert thresholds_sent(conn, m) == []


def test_each_organisation_uses_its_own_thresholds_read_at_each_run(conn: Conn) -> None:
    """Thresholds come from org_settings at each run: a change applies without a restart."""
    default, custom = world(conn, "A"), world(conn, "B")
    conn.execute(
        "UPDATE org_settings SET reminder_threshold_days = '{60,21,3}' WHERE organization_id = %s",
        [custom.org],
    )
    a, b = mentor(conn, default, 45), mentor(conn, custom, 45)
    check(conn)
    assert (thresholds_sent(conn, a), thresholds_sent(conn, b)) == ([], [60])
    conn.execute(
        "UPDATE org_settings SET reminder_threshold_days = '{50,10}' WHERE organization_id = %s",
        [default.org],
    )
    check(conn, TODAY + timedelta(days=1))  # 44 left
    assert (thresholds_sent(conn, a), thresholds_sent(conn, b)) == ([50], [60])


def test_an_organisation_without_settings_gets_the_default_thresholds(conn: Conn) -> None:
    """No org_settings row: 30/14/7, the column's default."""
    w = world(conn)
    conn.execute("DELETE FROM org_settings")
    m = mentor(conn, w, 12)
    check(conn)
    assert thresholds_sent(conn, m) == [14]


def test_a_repeated_run_inserts_nothing_and_alerts_no_one(conn: Conn) -> None:
    """The second run on the same day finds every reminder sent: no row, no alert."""
    w = world(conn)
    for days in (30, 14, 7, 0, -1):
        mentor(conn, w, days)
    first = check(conn)
    before = snapshot(conn)
    second = check(conn)
    assert first["reminders_total"] == 4
    assert first["paused"] == 1
    assert (second["reminders_total"], second["reminder_alerts"], second["paused"]) == (0, 0, 0)
    assert snapshot(conn) == before


def _check_in_one_transaction(conn: Conn, actor: str) -> tuple[int, int, int]:
    """The check's own statements over the whole range, on `conn`, in the caller's transaction:
    (reminders, reminder alerts, pauses)."""
    params = {"today": TODAY, "actor": actor, "now": None, "lo": None, "hi": None}
    sent = conn.execute(q("expiry_send_reminders"), params).fetchall()
    paused = conn.execute(q("expiry_pause_expired"), params).fetchone()
    assert paused is not None
    return sum(int(r[1]) for r in sent), sum(int(r[2]) for r in sent), int(paused[0])


async def test_three_runs_two_of_them_concurrent_leave_identical_rows(
    db_url: str, conn: Conn, pool: Pool
) -> None:
    """Run A holds its transaction while run B starts; B waits, then adds nothing; C neither."""
    w = world(conn)
    for days in (30, 20, 14, 7, 3, 0, -1, -5):
        mentor(conn, w, days)
    with psycopg.connect(db_url, autocommit=True) as a:
        with a.transaction():
            totals = [_check_in_one_transaction(a, "run-a")]
            run_b = asyncio.create_task(expiry.run_expiry_check(pool, TODAY, "run-b"))
            await until_blocked(conn)
            assert snapshot(conn)["reminders"] == []  # A has not committed yet
        after_a = snapshot(conn)
        results = [await asyncio.wait_for(run_b, 30)]
    assert snapshot(conn) == after_a
    results.append(check(conn, actor="run-c"))
    assert snapshot(conn) == after_a
    totals += [(r["reminders_total"], r["reminder_alerts"], r["paused"]) for r in results]
    assert totals == [(6, 6, 2), (0, 0, 0), (0, 0, 0)]
    assert len(alerts(conn, "cert_reminder")) == 6
    assert len(alerts(conn, "cert_paused")) == 2


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    days=st.integers(-5, 120),
    values=st.lists(st.integers(1, 120), min_size=1, max_size=6, unique=True),
)
def test_the_sql_rule_picks_the_smallest_threshold_not_below(
    conn: Conn, days: int, values: list[int]
) -> None:
    """expiry_threshold in SQL picks the smallest threshold not below the days left, if any."""
    row = conn.execute("SELECT expiry_threshold(%s, %s)", [days, values]).fetchone()
    assert row is not None
    assert row[0] == smallest_not_below(days, values)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    days=st.lists(st.integers(-3, 70), min_size=1, max_size=12),
    values=st.lists(st.integers(1, 60), min_size=1, max_size=4, unique=True),
)
def test_the_check_sends_what_the_rule_says(conn: Conn, days: list[int], values: list[int]) -> None:
    """For random certificates and thresholds, the check inserts the reminder the rule names."""
    # Committed (the check runs on connections of its own), so each example has its own
    # organisation; the earlier ones' mentors are not looked at.
    w = world(conn, f"HLF-{uuid.uuid4().hex[:8]}")
    conn.execute(
        "UPDATE org_settings SET reminder_threshold_days = %s WHERE organization_id = %s",
        [values, w.org],
    )
    made = [(mentor(conn, w, d), d) for d in days]
    check(conn)
    for m, d in made:
        expected = smallest_not_below(d, values)
        assert thresholds_sent(conn, m) == ([] if expected is None else [expected])
