"""Live changes before bulk work: a person's change is claimed, and called, ahead of a backlog of
scheduled bulk work queued earlier (the nightly expiry's pauses, a reconciliation)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import psycopg

from hlfsync.db import expiry
from hlfsync.db.jobs import BULK_PRIORITY, LIVE_PRIORITY
from hlfsync.testing import FakeClock, ScriptedDynamics
from hlfsync.worker import handlers
from hlfsync.worker.lag import LagProbe
from tests.integration.db.factories import make_chapter, make_mentor, make_org, make_user
from tests.integration.worker.conftest import Build

Conn = psycopg.Connection[Any]
TODAY = date.today()


def _world(conn: Conn, expired: int) -> tuple[list[Any], Any]:
    """`expired` active mentors whose certificate ran out, and one with a valid certificate."""
    org = make_org(conn)
    chapter = make_chapter(conn, org)
    make_user(conn, org, coordinates=(chapter,), token="device-1")
    bulk = [
        make_mentor(conn, org, chapters=(chapter,), expires_on=TODAY - timedelta(days=3))
        for _ in range(expired)
    ]
    live = make_mentor(conn, org, chapters=(chapter,), expires_on=TODAY + timedelta(days=200))
    return bulk, live


def _pause(conn: Conn, mentor: Any) -> None:
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])


def _contact(conn: Conn, mentor: Any) -> Any:
    row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    return row.fetchone()[0]  # type: ignore[index]


def test_the_expiry_queues_bulk_work_and_a_person_live_work(conn: Conn) -> None:
    """The expiry's `remove`s carry the bulk priority; a person's change the live one."""
    bulk, live = _world(conn, 3)
    assert expiry.run_expiry_check(conn, TODAY, "scheduler:expiry_check")["paused"] == 3
    _pause(conn, live)
    rows = dict(conn.execute("SELECT mentor_id, priority FROM sync_queue").fetchall())
    assert {rows[m] for m in bulk} == {BULK_PRIORITY}
    assert rows[live] == LIVE_PRIORITY
    # The setting does not leak into the caller's later changes.
    assert conn.execute("SELECT current_setting('hlfsync.priority', true)").fetchone() in (
        (None,), ("",),
    )  # fmt: skip


async def test_a_live_change_is_claimed_before_a_bulk_backlog_queued_earlier(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """Claiming one operation after the night's pauses and then a coordinator's change takes
    the coordinator's, though it was queued last."""
    _, live = _world(conn, 5)
    expiry.run_expiry_check(conn, TODAY, "scheduler:expiry_check")
    _pause(conn, live)
    clock.advance(60)  # the fake clock started before these rows were written
    worker = await build()
    (first,) = await worker.worker.ctx.store.claim(
        limit=1, now=worker.worker.ctx.clock.now(), lease_s=30
    )
    assert first.mentor_id == live
    assert first.live


async def test_a_live_change_goes_past_bulk_work_already_claimed(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """With the worker's buffer full of claimed bulk work and every call slot taken, a
    coordinator's change is claimed on its NOTIFY and called before the buffered backlog."""
    _, live = _world(conn, 30)
    expiry.run_expiry_check(conn, TODAY, "scheduler:expiry_check")
    clock.advance(60)  # the fake clock started before these rows were written
    gate = asyncio.Event()

    class Slow(ScriptedDynamics):
        async def apply(self, change: Any) -> None:
            await gate.wait()  # every call in flight stays there until the gate opens
            await super().apply(change)

    client = Slow(clock)
    worker = await build(client=client, worker_concurrency=2)
    runner = worker.worker
    await runner.ctx.breaker.refresh()  # as run() does first
    await runner._tick()
    await asyncio.sleep(0.05)  # the calls, tasks, take their slots
    assert runner.ctx.slots.busy == 2
    assert runner._buffer  # bulk work claimed, waiting for a slot in memory
    _pause(conn, live)
    clock.advance(60)
    runner._live_hint = True  # what the NOTIFY sets
    await runner._tick()
    await asyncio.sleep(0.05)
    assert handlers.URGENT.get() is False  # only the live task's own context is urgent
    assert runner.ctx.slots.urgent_waiting == 1
    gate.set()
    for _ in range(200):
        if len(client.calls) >= 3:
            break
        await asyncio.sleep(0.01)
    # The two calls that held the slots, then the live one, ahead of 28 buffered bulk calls.
    assert client.calls[2][1] == _contact(conn, live)


async def test_the_lag_probe_measures_a_held_loop() -> None:
    """A callback that holds the loop for 50 ms shows as at least that much lag."""
    import time

    probe = LagProbe(interval_s=0.005)
    stop = asyncio.Event()
    task = asyncio.create_task(probe.run(stop))
    await asyncio.sleep(0.02)
    time.sleep(0.05)  # noqa: ASYNC251 - the point: the loop is held, nothing else runs
    await asyncio.sleep(0.02)
    stop.set()
    await task
    assert probe.max_s >= 0.04
    assert probe.samples >= 2
