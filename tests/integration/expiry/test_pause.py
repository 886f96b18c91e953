"""Auto-pause on real PostgreSQL: an expired certificate pauses an active mentor once, queues one
`remove`, audits it and alerts the coordinators once; anyone not active is left alone."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from hlfsync.db import expiry
from hlfsync.db.pool import Pool
from tests.integration.expiry.world import (
    TODAY,
    Conn,
    alerts,
    check,
    deliveries,
    mentor,
    queue,
    status,
    until_blocked,
    world,
)


def test_an_expired_certificate_pauses_the_mentor_and_queues_one_remove(conn: Conn) -> None:
    """Expired yesterday: paused for expiry, one remove queued, audited, one coordinator alert."""
    w = world(conn)
    m = mentor(conn, w, -1)
    stats = check(conn, actor="expiry-check")
    assert (stats["paused"], stats["pause_alerts"]) == (1, 1)
    assert status(conn, m) == ("paused", "certification_expired")
    assert queue(conn, m) == [("remove", "pending")]
    audit = conn.execute(
        "SELECT event_type, actor, details FROM audit_log WHERE mentor_id = %s ORDER BY id", [m]
    ).fetchall()
    events = {event: (actor, details) for event, actor, details in audit}
    assert set(events) == {"status_changed", "certification_expired"}
    assert events["status_changed"][0] == "expiry-check"
    assert events["status_changed"][1]["reason"] == "certification_expired"
    assert events["certification_expired"][1]["certification_expiry_date"] == "2026-03-31"
    [(kind, key, alert_mentor, payload)] = alerts(conn, "cert_paused")
    assert (kind, key, alert_mentor) == ("cert_paused", f"{m}:2026-03-31", m)
    assert payload == {"type": "hlf_cert_paused", "mentor_id": str(m), "operation": "remove"}
    assert deliveries(conn, "cert_paused") == [(key, "tok-coord-HLF")]


def test_a_certificate_expiring_today_is_still_valid(conn: Conn) -> None:
    """On its expiry date the mentor stays listed (and gets the last reminder instead)."""
    m = mentor(conn, world(conn), 0)
    assert check(conn)["paused"] == 0
    assert status(conn, m) == ("active", None)


@pytest.mark.parametrize(
    ("state", "reason"), [("paused", "manual"), ("paused", "certification_expired"),
                          ("inactive", "left_programme")],
)  # fmt: skip
def test_a_mentor_not_active_is_left_alone(conn: Conn, state: str, reason: str) -> None:
    """The pause is a no-op for a mentor already paused or inactive: no queue, no alert."""
    m = mentor(conn, world(conn), -10, status=state, reason=reason)
    assert check(conn)["paused"] == 0
    assert status(conn, m) == (state, reason)
    assert queue(conn, m) == []
    assert alerts(conn) == []


def test_a_second_run_pauses_no_one_again(conn: Conn) -> None:
    """Run twice: still one remove, one alert, one certification_expired audit row."""
    m = mentor(conn, world(conn), -3)
    check(conn)
    assert check(conn)["paused"] == 0
    assert queue(conn, m) == [("remove", "pending")]
    assert len(alerts(conn, "cert_paused")) == 1


def test_the_callers_actor_setting_is_put_back(conn: Conn) -> None:
    """The pause sets hlfsync.actor for the trigger, then restores the caller's value."""
    mentor(conn, world(conn), -1)
    with conn.transaction():
        conn.execute("SELECT set_config('hlfsync.actor', 'outer', true)")
        conn.execute("SELECT * FROM expiry_pause_expired(%s, 'inner', NULL)", [TODAY])
        row = conn.execute(
            "SELECT current_setting('hlfsync.actor'), current_setting('hlfsync.reason')"
        ).fetchone()
    assert row == ("outer", "")


async def test_a_pause_by_hand_committed_first_wins_over_the_check(
    db_url: str, conn: Conn, pool: Pool
) -> None:
    """The check re-reads the status under the row lock: a concurrent manual pause stands."""
    m = mentor(conn, world(conn), -1)
    result: list[dict[str, object]] = []
    with psycopg.connect(db_url, autocommit=True) as manual:
        with manual.transaction():
            manual.execute(
                "UPDATE peer_mentors SET status = 'paused', status_reason = 'manual' WHERE id = %s",
                [m],
            )
            running = asyncio.create_task(expiry.run_expiry_check(pool, TODAY, "check"))
            await until_blocked(conn)
        result.append(await asyncio.wait_for(running, 30))
    assert result[0]["paused"] == 0
    assert status(conn, m) == ("paused", "manual")
    assert queue(conn, m) == [("remove", "pending")]  # the manual pause's own operation
    assert alerts(conn, "cert_paused") == []
