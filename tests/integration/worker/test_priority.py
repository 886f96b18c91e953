"""Live changes before bulk work: a person's change is claimed, and called, ahead of a backlog of
scheduled bulk work queued earlier (the nightly expiry's pauses, a reconciliation)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import psycopg

from hlfsync import services, settings, tasks
from hlfsync.db.pool import open_pool
from hlfsync.db.queue import BULK, BULK_PRIORITY, LIVE, LIVE_PRIORITY
from hlfsync.testing import (
    FakeClock,
    ScriptedDynamics,
    make_chapter,
    make_mentor,
    make_org,
    make_user,
)
from hlfsync.worker import handlers
from hlfsync.worker.lag import LagProbe
from tests.integration.expiry.world import check
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


async def test_the_expiry_queues_bulk_work_and_a_person_live_work(conn: Conn, db_url: str) -> None:
    """The expiry's `remove`s carry the bulk priority; a person's change the live one, made on
    the very connection the check ran on (the setting does not leak into later changes)."""
    bulk, live = _world(conn, 3)
    pool = await open_pool(db_url, max_size=1, name="expiry-check")  # one connection for both
    try:
        stats = await tasks.expiry_check(pool, today=TODAY, actor=tasks.SCHEDULER_ACTOR)
        assert stats["paused"] == 3
        async with pool.connection() as used:
            await used.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [live])
            cur = await used.execute("SELECT current_setting('hlfsync.priority', true)")
            setting = await cur.fetchone()
    finally:
        await pool.close()
    rows = dict(conn.execute("SELECT mentor_id, priority FROM sync_queue").fetchall())
    assert {rows[m] for m in bulk} == {BULK_PRIORITY}
    assert rows[live] == LIVE_PRIORITY
    assert setting in ((None,), ("",))


async def test_a_live_change_is_claimed_before_a_bulk_backlog_queued_earlier(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """Claiming one operation after the night's pauses and then a coordinator's change takes
    the coordinator's, though it was queued last."""
    _, live = _world(conn, 5)
    check(conn, TODAY, tasks.SCHEDULER_ACTOR)
    _pause(conn, live)
    clock.advance(60)  # the fake clock started before these rows were written
    worker = await build()
    (first,) = await worker.worker.ctx.store.claim(
        limit=1, now=worker.worker.ctx.clock.now(), lease_s=30
    )
    assert first.mentor_id == live
    assert first.live


async def test_each_lane_claims_and_waits_for_its_own_work_only(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """The live lane (the main loop's) never takes the night's bulk work and the bulk lane (the
    background loop's) never a person's change; each sleeps until its own next due work, so the
    live lane does not wake again and again for bulk work it may not take."""
    bulk, live = _world(conn, 4)
    check(conn, TODAY, tasks.SCHEDULER_ACTOR)
    _pause(conn, live)
    conn.execute("UPDATE sync_queue SET next_attempt_at = now() + interval '1 hour'"
                 " WHERE mentor_id = %s", [live])  # fmt: skip
    clock.advance(60)
    worker = await build()
    store, now = worker.worker.ctx.store, clock.now()
    assert await store.claim(limit=10, now=now, lease_s=30, lane=LIVE) == []
    live_due, bulk_due = await store.next_due(LIVE), await store.next_due(BULK)
    assert live_due is not None
    assert bulk_due is not None
    assert live_due - bulk_due > timedelta(minutes=50)
    taken = await store.claim(limit=10, now=now, lease_s=30, lane=BULK)
    assert sorted(op.mentor_id for op in taken) == sorted(bulk)
    assert all(not op.live for op in taken)
    later = now + timedelta(hours=2)
    assert await store.claim(limit=10, now=later, lease_s=30, lane=BULK) == []
    (mine,) = await store.claim(limit=10, now=later, lease_s=30, lane=LIVE)
    assert mine.mentor_id == live


async def test_a_live_lane_worker_sends_only_live_work(
    conn: Conn, build: Build, clock: FakeClock, dynamics: ScriptedDynamics
) -> None:
    """A worker narrowed to the live lane drains a person's change and leaves the bulk backlog
    for the background loop's bulk lane."""
    bulk, live = _world(conn, 3)
    check(conn, TODAY, tasks.SCHEDULER_ACTOR)
    _pause(conn, live)
    clock.advance(60)
    worker = await build()
    worker.worker.lane = LIVE
    assert await worker.worker.run_once() == 1
    assert set(dynamics.listed) == {_contact(conn, live)}
    worker.worker.lane = BULK
    assert await worker.worker.run_once() == len(bulk)
    assert set(dynamics.listed) == {_contact(conn, m) for m in [*bulk, live]}


async def test_a_live_change_goes_past_bulk_work_already_claimed(
    conn: Conn, build: Build, clock: FakeClock
) -> None:
    """With the worker's buffer full of claimed bulk work and its bulk calls stuck, a
    coordinator's change is claimed on its NOTIFY and called at once, before the backlog."""
    _, live = _world(conn, 30)
    check(conn, TODAY, tasks.SCHEDULER_ACTOR)
    clock.advance(60)  # the fake clock started before these rows were written
    gate = asyncio.Event()

    class Slow(ScriptedDynamics):
        async def apply(self, change: Any) -> None:
            self.calls.append((clock.now(), change.contact_id, "started"))
            await gate.wait()  # bulk calls in flight stay there until the gate opens
            await super().apply(change)

    client = Slow(clock)
    worker = await build(client=client, worker_concurrency=4)
    runner = worker.worker
    await runner.ctx.breaker.refresh()  # as run() does first
    await runner._tick()
    await asyncio.sleep(0.05)  # the calls, tasks, take their slots
    assert runner.ctx.slots.busy == 1  # bulk work takes a quarter of the slots at most
    assert len(runner._buffer) >= 10  # the rest of the claim waits in memory
    _pause(conn, live)
    clock.advance(60)
    runner._live_hint = True  # what the NOTIFY sets
    await runner._tick()
    await asyncio.sleep(0.05)
    contact = _contact(conn, live)
    assert [c for _, c, what in client.calls if what == "started"][-1] == contact
    assert handlers.URGENT.get() is False  # only the live task's own context is urgent
    gate.set()
    for _ in range(100):
        if (contact, False) in client.listed.items():
            break
        await asyncio.sleep(0.01)
    assert client.listed[contact] is False


async def test_an_urgent_call_takes_the_next_free_slot_ahead_of_waiting_ones() -> None:
    """Every slot busy, a bulk call waiting, then an urgent one: the freed slot goes to the
    urgent call."""
    slots = handlers.CallSlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def call(name: str, *, urgent: bool) -> None:
        handlers.URGENT.set(urgent)
        async with slots.hold():
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(call("first", urgent=False))
    await asyncio.sleep(0.01)
    bulk = asyncio.create_task(call("bulk", urgent=False))
    await asyncio.sleep(0.01)
    live = asyncio.create_task(call("live", urgent=True))
    await asyncio.sleep(0.01)
    assert slots.urgent_waiting == 1
    release.set()
    await asyncio.gather(first, bulk, live)
    assert order == ["first", "live", "bulk"]


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


def test_every_garbage_collection_is_timed() -> None:
    """A collection holds every thread, the live loop's too: each one is in the histogram."""
    import gc

    from hlfsync import metrics
    from hlfsync.worker.lag import watch_gc

    def count() -> float:
        return sum(
            s.value
            for family in metrics.GC_PAUSE.collect()
            for s in family.samples
            if s.name.endswith("_count") and s.labels.get("generation") == "2"
        )

    before = count()
    timed = watch_gc()
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(timed)
    assert count() == before + 1


async def test_the_bulk_lane_starts_fewer_calls_while_the_live_loop_lags(
    conn: Conn, db_url: str, build: Build, clock: FakeClock
) -> None:
    """The background loop's bulk lane reads the live loop's probe: while it says a person's
    change would wait (50 ms late), the lane halves the bulk calls it starts; once the live loop
    is quick again it wins them back one at a time."""
    _world(conn, 30)
    check(conn, TODAY, tasks.SCHEDULER_ACTOR)
    clock.advance(60)
    gate = asyncio.Event()

    class Held(ScriptedDynamics):
        async def apply(self, change: Any) -> None:
            self.calls.append((clock.now(), change.contact_id, "started"))
            await gate.wait()
            await super().apply(change)

    client = Held(clock)
    conf = settings.load(database_url=db_url, worker_concurrency=16)
    live = await build(client=client, worker_concurrency=16)
    probe = LagProbe()
    bulk = services.bulk_lane(conf, live.pool, url=live.url, client=client, clock=clock,
                              worker_id="test-bulk", breaker=live.worker.ctx.breaker,
                              live_lag=probe)  # fmt: skip
    assert bulk.lane is BULK
    assert bulk.concurrency == 4  # a quarter of the worker's calls

    def started() -> int:
        return sum(what == "started" for *_, what in client.calls)

    for _ in range(5):
        probe.record(0.05)
    await bulk.ctx.breaker.refresh()  # as run() does first
    await bulk._tick()
    await asyncio.sleep(0.05)
    assert started() == 2  # half of its 4
    for _ in range(5):
        probe.record(0.0)
    await asyncio.sleep(0.06)  # one adjustment period
    bulk._fill_slots()
    await asyncio.sleep(0.05)
    assert started() == 3  # one won back
    gate.set()
    await asyncio.gather(*bulk._inflight)
