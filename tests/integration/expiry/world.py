"""A small world for expiry tests: one organisation, a chapter with a coordinator and an admin,
each with a device, and mentors whose certificates expire a given number of days after TODAY."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from hlfsync.db import expiry
from hlfsync.db.pool import open_pool
from hlfsync.testing import make_chapter, make_mentor, make_org, make_user

Conn = psycopg.Connection[Any]
TODAY = date(2026, 4, 1)


@dataclass(frozen=True)
class World:
    org: uuid.UUID
    chapter: uuid.UUID
    coordinator: uuid.UUID
    admin: uuid.UUID


def world(conn: Conn, name: str = "HLF") -> World:
    org = make_org(conn, name)
    chapter = make_chapter(conn, org)
    coordinator = make_user(conn, org, coordinates=(chapter,), token=f"tok-coord-{name}")
    admin = make_user(conn, org, admin=True, token=f"tok-admin-{name}")
    return World(org, chapter, coordinator, admin)


def mentor(
    conn: Conn,
    w: World,
    days_left: int,
    *,
    status: str = "active",
    reason: str | None = None,
    today: date = TODAY,
) -> uuid.UUID:
    """A mentor in the world's chapter whose certificate expires `days_left` days after today."""
    mid = make_mentor(
        conn, w.org, status=status, chapters=(w.chapter,), expires_on=today + timedelta(days_left)
    )
    if reason is not None:
        # Only the reason changes, so no trigger fires: the mentor is as if paused for it.
        conn.execute("UPDATE peer_mentors SET status_reason = %s WHERE id = %s", [reason, mid])
    return mid


def check(conn: Conn, today: date = TODAY, actor: str = "test") -> dict[str, Any]:
    """The expiry check as the scheduler and `hlfsync expiry-check` run it, on a pool of its own
    to `conn`'s database; one lane, so chunks run in mentor-id order (a test cutting a run
    counts on it). On a thread of its own, so async tests may call it too."""
    url = psycopg.conninfo.make_conninfo(conn.info.dsn, password=conn.info.password)
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _check(url, today, actor)).result()


async def _check(url: str, today: date, actor: str) -> dict[str, Any]:
    pool = await open_pool(url, max_size=1, name="expiry-check")
    try:
        return await expiry.run_expiry_check(pool, today, actor, lanes=1)
    finally:
        await pool.close()


async def until_blocked(conn: Conn, timeout_s: float = 10.0) -> None:
    """Wait (briefly, polling) until another backend on this database waits on a lock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        ).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no backend waited on a lock")


def reminders(conn: Conn, mentor_id: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT mentor_id, threshold_day, certification_expiry_date, days_left"
        " FROM cert_expiry_reminders WHERE %(m)s::uuid IS NULL OR mentor_id = %(m)s"
        " ORDER BY mentor_id, threshold_day DESC",
        {"m": mentor_id},
    ).fetchall()


def thresholds_sent(conn: Conn, mentor_id: uuid.UUID) -> list[int]:
    return [r[1] for r in reminders(conn, mentor_id)]


def alerts(conn: Conn, kind: str | None = None) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, incident_key, mentor_id, payload FROM alerts"
        " WHERE %(k)s::text IS NULL OR kind = %(k)s ORDER BY id",
        {"k": kind},
    ).fetchall()


def deliveries(conn: Conn, kind: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT a.incident_key, d.device_token FROM alert_deliveries d"
        " JOIN alerts a ON a.id = d.alert_id WHERE a.kind = %s ORDER BY 1, 2",
        [kind],
    ).fetchall()


def queue(conn: Conn, mentor_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT operation, status FROM sync_queue WHERE mentor_id = %s ORDER BY id", [mentor_id]
    ).fetchall()


def status(conn: Conn, mentor_id: uuid.UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT status, status_reason FROM peer_mentors WHERE id = %s", [mentor_id]
    ).fetchone()
    assert row is not None
    return tuple(row)


def snapshot(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an expiry check writes, without ids or timestamps, for comparing runs."""
    return {
        "reminders": reminders(conn),
        "alerts": [(k, key, m) for k, key, m, _ in alerts(conn)],
        "deliveries": conn.execute(
            "SELECT a.kind, a.incident_key, d.device_token FROM alert_deliveries d"
            " JOIN alerts a ON a.id = d.alert_id ORDER BY 1, 2, 3"
        ).fetchall(),
        "queue": conn.execute(
            "SELECT mentor_id, operation, status FROM sync_queue ORDER BY 1, 2, 3"
        ).fetchall(),
        "statuses": conn.execute(
            "SELECT id, status, status_reason FROM peer_mentors ORDER BY id"
        ).fetchall(),
        "audit": conn.execute(
            "SELECT event_type, mentor_id, count(*) FROM audit_log GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall(),
    }
