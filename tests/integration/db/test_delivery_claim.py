"""The push dispatcher's claim reads its batch from one index, in the alerts' raise order, and
takes over what a dispatcher that died left leased.

The first expiry check raises an alert per paused mentor: 85,000 deliveries at 100,000 mentors.
A claim that read and sorted every due delivery for each batch of 50 cost 91 ms a claim, and
the night quadratic time (migration 0023).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from hlfsync.core.clock import SystemClock
from hlfsync.db.pool import open_pool
from hlfsync.db.queries import q
from hlfsync.testing import RecordingNotifier, make_alert, prepared_statements
from hlfsync.worker.dispatcher import AlertDispatcher

Conn = psycopg.Connection[Any]
DUE = 3000
ROUNDS = 8  # more than the five after which psycopg prepares a statement


def _deliveries(conn: Conn, alert: int, user: Any, due: list[datetime]) -> list[int]:
    """One delivery per due time, each to a device of its own; their ids in that order."""
    return [
        row[0]
        for row in conn.execute(
            "INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at)"
            " SELECT %s, %s, 'device-' || n, d FROM unnest(%s::timestamptz[])"
            "   WITH ORDINALITY AS t (d, n) ORDER BY n RETURNING id",
            [alert, user, due],
        ).fetchall()
    ]


def test_a_claim_reads_its_batch_in_index_order_not_every_due_delivery(conn: Conn) -> None:
    now = datetime.now(UTC)
    alert, user = make_alert(conn, now)
    _deliveries(conn, alert, user, [now - timedelta(seconds=DUE - n) for n in range(DUE)])
    conn.execute("ANALYZE alert_deliveries")
    plan = "\n".join(
        row[0]
        for row in conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + q("claim_deliveries"),
            {"now": now, "limit": 50, "lease": 60},
        )
    )
    assert "Sort" not in plan, plan
    assert "alert_deliveries_due_idx" in plan, plan


def test_a_lapsed_lease_goes_back_in_its_place_and_a_live_one_stays(conn: Conn) -> None:
    now = datetime.now(UTC)
    alert, user = make_alert(conn, now)
    lapsed, waiting, leased = _deliveries(
        conn, alert, user, [now - timedelta(seconds=s) for s in (30, 20, 10)]
    )
    conn.execute(
        "UPDATE alert_deliveries SET status = 'in_progress', locked_until = %s WHERE id = %s",
        [now - timedelta(seconds=1), lapsed],
    )
    conn.execute(
        "UPDATE alert_deliveries SET status = 'in_progress', locked_until = %s WHERE id = %s",
        [now + timedelta(seconds=60), leased],
    )
    conn.execute(q("release_expired_deliveries"), {"now": now})
    claimed = [
        row[0]
        for row in conn.execute(q("claim_deliveries"), {"now": now, "limit": 10, "lease": 60})
    ]
    assert sorted(claimed) == sorted([lapsed, waiting])
    attempts = conn.execute(
        "SELECT attempt_count FROM alert_deliveries WHERE id = %s", [lapsed]
    ).fetchone()
    assert attempts == (0,)


async def test_the_dispatcher_never_prepares_its_release_claim_or_record(
    conn: Conn, db_url: str
) -> None:
    """A plan cached on the first rounds, while there were few deliveries, would read them all
    at every round of a night of 85,000 (as the sync queue's claim did, test_claim_plan)."""
    now = datetime.now(UTC)
    alert, user = make_alert(conn, now)
    pool = await open_pool(db_url, max_size=1)  # one connection: every round on the same one
    try:
        dispatcher = AlertDispatcher(pool, RecordingNotifier(), SystemClock())
        for n in range(ROUNDS):  # one push a round: each round records one delivered
            conn.execute(
                "INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at)"
                " VALUES (%s, %s, %s, %s)",
                [alert, user, f"round-{n}", now - timedelta(seconds=1)],
            )
            assert await dispatcher.run_once() == 1
        prepared = await prepared_statements(pool)
    finally:
        await pool.close()
    assert [s for s in prepared if "alert_deliveries" in s and "locked_until" in s] == []
