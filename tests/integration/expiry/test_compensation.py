"""The compensation check: silent on a clean database, one operations alert when duplicates for
one certification period exist (made here by bypassing the constraint in a throwaway database)."""

from __future__ import annotations

from datetime import UTC, datetime

from hlfsync import tasks
from hlfsync.db import expiry
from hlfsync.db.pool import Pool
from tests.integration.expiry.world import TODAY, Conn, alerts, check, deliveries, mentor, world

NOW = datetime(2026, 4, 1, 9, 17, tzinfo=UTC)


def _drop_reminder_key(conn: Conn) -> None:
    """Remove the UNIQUE key of cert_expiry_reminders, as a broken copy of the schema would."""
    row = conn.execute(
        "SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'cert_expiry_reminders'::regclass AND contype = 'u'"
    ).fetchone()
    assert row is not None
    conn.execute(f'ALTER TABLE cert_expiry_reminders DROP CONSTRAINT "{row[0]}"'.encode())


def _duplicate_reminders(conn: Conn) -> None:
    conn.execute(
        "INSERT INTO cert_expiry_reminders (mentor_id, certification_id, threshold_day,"
        " certification_expiry_date, days_left)"
        " SELECT mentor_id, certification_id, threshold_day, certification_expiry_date, days_left"
        " FROM cert_expiry_reminders"
    )


async def test_a_clean_database_finds_nothing_and_alerts_no_one(conn: Conn, pool: Pool) -> None:
    """After normal checks, repeated, there is nothing to compensate and no alert."""
    w = world(conn)
    for days in (30, 7, -1):
        mentor(conn, w, days)
    check(conn)
    check(conn)
    assert expiry.duplicates(conn) == []
    result = await expiry.run_compensation(pool, now=NOW)
    assert result == {"duplicates": 0, "alert_id": None, "new_alert": False, "deliveries": 0}
    assert alerts(conn, "compensation") == []


async def test_duplicate_reminders_raise_one_alert_for_operators(conn: Conn, pool: Pool) -> None:
    """Two reminders of one threshold per period: one compensation alert, for the operators only
    (its findings name mentors of any organisation, so no organisation's phone gets it)."""
    w = world(conn)
    m = mentor(conn, w, 7)
    check(conn)
    _drop_reminder_key(conn)
    _duplicate_reminders(conn)
    assert expiry.duplicates(conn) == [("duplicate_reminder", m, TODAY.replace(day=8), 7, 2)]
    first = await expiry.run_compensation(pool, now=NOW)
    assert (first["duplicates"], first["new_alert"], first["deliveries"]) == (1, True, 0)
    [(kind, _key, alert_mentor, payload)] = alerts(conn, "compensation")
    assert (kind, alert_mentor) == ("compensation", None)
    assert payload == {"type": "hlf_compensation", "findings": "1"}
    assert deliveries(conn, "compensation") == []
    audience = conn.execute("SELECT audience FROM alerts WHERE kind = 'compensation'").fetchone()
    assert audience == ("operators",)
    # The same findings an hour later: still reported, not alerted again.
    again = await expiry.run_compensation(pool, now=NOW)
    assert (again["duplicates"], again["new_alert"]) == (1, False)
    assert len(alerts(conn, "compensation")) == 1


async def test_a_second_pause_for_the_same_period_is_flagged(conn: Conn, pool: Pool) -> None:
    """Paused, reactivated by hand, paused again for the same expiry: operations are told."""
    m = mentor(conn, world(conn), -1)
    check(conn)
    conn.execute(
        "UPDATE peer_mentors SET status = 'active', status_reason = 'manual' WHERE id = %s", [m]
    )
    assert check(conn)["paused"] == 1
    assert expiry.duplicates(conn) == [("duplicate_pause", m, TODAY.replace(day=31, month=3),
                                        None, 2)]  # fmt: skip
    assert (await expiry.run_compensation(pool, now=NOW))["new_alert"]
    # The coordinators' alert is keyed per mentor and period: they heard of it the first time.
    assert len(alerts(conn, "cert_paused")) == 1


async def test_the_scheduled_job_raises_the_alert_through_the_pool(conn: Conn, pool: Pool) -> None:
    """compensation_check, as the scheduler calls it, finds and alerts the same way."""
    mentor(conn, world(conn), 7)
    check(conn)
    assert (await tasks.compensation_check(pool, now=NOW))["duplicates"] == 0
    _drop_reminder_key(conn)
    _duplicate_reminders(conn)
    result = await tasks.compensation_check(pool, now=NOW)
    assert (result["duplicates"], result["new_alert"]) == (1, True)
