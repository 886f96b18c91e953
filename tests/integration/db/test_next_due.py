"""`next_due`: when a lane's earliest waiting operation becomes due, read from the claim index
a priority at a time, not by reading every waiting operation of the lane.

An idle loop asks before each sleep. During a first night the bulk lane has 49,000 waiting
removes; min() over the lane's range read all of them, 35 ms a call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from hlfsync.db.pool import open_pool
from hlfsync.db.queries import q
from hlfsync.db.queue import BULK, EVERY, LIVE, Lane, OperationStore
from hlfsync.testing import make_org

Conn = psycopg.Connection[Any]
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def _queue(conn: Conn, rows: list[tuple[int, datetime, str]]) -> None:
    """One operation per row, each for a mentor of its own: (priority, due, status)."""
    org = make_org(conn)
    for priority, due, status in rows:
        conn.execute(
            "WITH m AS (INSERT INTO peer_mentors (organization_id, full_name, status)"
            "           VALUES (%s, 'Kari Nordmann', 'active') RETURNING id)"
            " INSERT INTO sync_queue (mentor_id, operation, payload_json, priority,"
            "                         next_attempt_at, status, locked_until, finished_at)"
            " SELECT m.id, 'remove', '{}', %s, %s, %s,"
            "        CASE WHEN %s = 'in_progress' THEN %s::timestamptz END,"
            "        CASE WHEN %s = 'succeeded' THEN %s::timestamptz END FROM m",
            [org, priority, due, status, status, due, status, due],
        )


async def _next_due(db_url: str, lane: Lane) -> datetime | None:
    pool = await open_pool(db_url, max_size=1)
    try:
        return await OperationStore(pool, worker_id="next-due-test").next_due(lane)
    finally:
        await pool.close()


async def test_each_lane_gets_the_earliest_due_of_its_own_waiting_work(
    conn: Conn, db_url: str
) -> None:
    at = [NOW + timedelta(minutes=n) for n in range(8)]
    _queue(conn, [
        (-10, at[3], "pending"), (-10, at[2], "pending"),
        (-5, at[1], "pending"),
        (-1, at[0], "in_progress"),  # not waiting: running
        (-20, at[0], "succeeded"),  # not waiting: done
        (0, at[5], "pending"), (0, at[6], "pending"),
        (10, at[4], "pending"),
    ])  # fmt: skip
    assert await _next_due(db_url, BULK) == at[1]
    assert await _next_due(db_url, LIVE) == at[4]
    assert await _next_due(db_url, EVERY) == at[1]


async def test_a_lane_with_nothing_waiting_has_no_next_due(conn: Conn, db_url: str) -> None:
    _queue(conn, [(0, NOW, "pending"), (-10, NOW, "succeeded")])
    assert await _next_due(db_url, BULK) is None
    assert await _next_due(db_url, LIVE) == NOW


def _rows_read(node: dict[str, Any]) -> int:
    """Rows every scan of `node`'s plan returned, over all its loops."""
    own = 0
    if "Scan" in node["Node Type"]:
        own = int(node["Actual Rows"] * node["Actual Loops"])
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def test_a_long_bulk_backlog_is_not_read_to_find_its_earliest(conn: Conn) -> None:
    org = make_org(conn)
    conn.execute(
        "WITH m AS (INSERT INTO peer_mentors (organization_id, full_name, status)"
        "           SELECT %s, 'Kari Nordmann', 'active' FROM generate_series(1, 3000)"
        "           RETURNING id)"
        " INSERT INTO sync_queue (mentor_id, operation, payload_json, priority, next_attempt_at)"
        " SELECT m.id, 'remove', '{}',"
        "        CASE WHEN row_number() OVER () %% 2 = 0 THEN -10 ELSE -5 END,"
        "        %s + row_number() OVER () * interval '1 second' FROM m",
        [org, NOW],
    )
    conn.execute("ANALYZE sync_queue")
    ((plan,),) = conn.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) " + q("next_due"),
        {"min_priority": BULK.lowest, "max_priority": BULK.highest},
    ).fetchall()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    assert _rows_read(plan[0]["Plan"]) < 20, plan
