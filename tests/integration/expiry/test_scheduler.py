"""The scheduler on real PostgreSQL: one run per slot across racing schedulers, the latest missed
slot at start, failures recorded without stopping the loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hlfsync.db.pool import Pool, open_pool
from hlfsync.testing import FakeClock
from hlfsync.worker.scheduler import ScheduledTask, Scheduler
from tests.integration.expiry.world import Conn

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 4, 4, 13, 0, tzinfo=UTC)
TODAYS_SLOT = datetime(2026, 4, 4, 0, 0, tzinfo=UTC)  # 02:00 CEST


class Counting:
    """A job that counts its runs and returns the instant it was given."""

    def __init__(self) -> None:
        self.calls: list[datetime] = []

    async def __call__(self, at: datetime) -> dict[str, Any]:
        self.calls.append(at)
        await asyncio.sleep(0)  # let a racing scheduler interleave
        return {"at": at.isoformat(), "n": len(self.calls)}


async def failing(at: datetime) -> dict[str, Any]:
    raise RuntimeError("Dynamics said no\nsecond line of detail")


def _runs(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT job, slot, status, error, finished_at IS NOT NULL FROM scheduled_runs"
        " ORDER BY job, slot"
    ).fetchall()


@pytest.fixture
async def second_pool(db_url: str) -> AsyncIterator[Pool]:
    """Another worker's pool on the same database."""
    opened = await open_pool(db_url, max_size=2, name="other-worker")
    yield opened
    await opened.close()


async def test_two_schedulers_racing_on_one_slot_run_it_once(
    conn: Conn, pool: Pool, second_pool: Pool
) -> None:
    """Both see the slot due; the unique key lets one claim it; the job runs once."""
    job = Counting()
    clock = FakeClock(NOW)
    jobs = {"expiry_check": ScheduledTask("0 2 * * *", job)}
    one = Scheduler(pool, clock, OSLO, jobs, worker_id="worker-1")
    two = Scheduler(second_pool, clock, OSLO, jobs, worker_id="worker-2")
    made = await asyncio.gather(one.run_once(), two.run_once())
    assert sorted(len(records) for records in made) == [0, 1]
    assert job.calls == [NOW]
    assert _runs(conn) == [("expiry_check", TODAYS_SLOT, "succeeded", None, True)]
    assert await one.run_once() == []
    assert await two.run_once() == []
    assert len(job.calls) == 1


async def test_a_slot_missed_during_downtime_runs_once_at_start(conn: Conn, pool: Pool) -> None:
    """Last run three nights ago: the latest slot runs at start, the two between never do."""
    conn.execute(
        "INSERT INTO scheduled_runs (job, slot, status, finished_at)"
        " VALUES ('expiry_check', %s, 'succeeded', %s)",
        [TODAYS_SLOT - timedelta(days=3), TODAYS_SLOT - timedelta(days=3)],
    )
    job = Counting()
    clock = FakeClock(NOW)
    scheduler = Scheduler(pool, clock, OSLO, {"expiry_check": ScheduledTask("0 2 * * *", job)})
    [record] = await scheduler.run_once()
    assert (record.slot, record.status, record.stats["n"]) == (TODAYS_SLOT, "succeeded", 1)
    assert [slot for _, slot, *_ in _runs(conn)] == [TODAYS_SLOT - timedelta(days=3), TODAYS_SLOT]
    clock.advance(timedelta(hours=6))
    assert await scheduler.run_once() == []
    clock.set(TODAYS_SLOT + timedelta(days=1))
    [tomorrow] = await scheduler.run_once()
    assert tomorrow.slot == TODAYS_SLOT + timedelta(days=1)
    assert len(job.calls) == 2


async def test_a_failing_job_is_recorded_and_the_others_still_run(conn: Conn, pool: Pool) -> None:
    """A job that raises is stored as failed with a one-line error; the next job succeeds."""
    ok = Counting()
    jobs = {"reconcile": ScheduledTask("30 2 * * *", failing),
            "compensation": ScheduledTask("17 * * * *", ok)}  # fmt: skip
    made = await Scheduler(pool, FakeClock(NOW), OSLO, jobs).run_once()
    assert {(r.job, r.status) for r in made} == {("reconcile", "failed"),
                                                 ("compensation", "succeeded")}  # fmt: skip
    runs = {job: (status, error, finished) for job, _, status, error, finished in _runs(conn)}
    assert runs["reconcile"] == ("failed", "RuntimeError: Dynamics said no", True)
    assert runs["compensation"] == ("succeeded", None, True)
    stats = conn.execute("SELECT stats FROM scheduled_runs WHERE job = 'compensation'").fetchone()
    assert stats == ({"at": NOW.isoformat(), "n": 1},)


async def test_the_loop_survives_a_failing_job_until_told_to_stop(conn: Conn, pool: Pool) -> None:
    """run() records a failure, keeps going, and returns once stop is set."""
    stop = asyncio.Event()

    async def stopper(at: datetime) -> dict[str, Any]:
        stop.set()
        return {}

    jobs = {"reconcile": ScheduledTask("30 2 * * *", failing),
            "health_check": ScheduledTask("*/5 * * * *", stopper)}  # fmt: skip
    await asyncio.wait_for(Scheduler(pool, FakeClock(NOW), OSLO, jobs).run(stop), timeout=10)
    assert {(job, status) for job, _, status, *_ in _runs(conn)} == {
        ("reconcile", "failed"), ("health_check", "succeeded")
    }  # fmt: skip


def test_a_bad_cron_expression_is_refused_at_construction() -> None:
    """A job with an invalid schedule fails when the scheduler is built, naming the job."""
    jobs = {"reconcile": ScheduledTask("every night", failing)}
    with pytest.raises(ValueError, match="scheduled job reconcile"):
        Scheduler(None, FakeClock(NOW), OSLO, jobs)  # type: ignore[arg-type]


async def test_a_run_cancelled_by_shutdown_is_recorded_as_failed(conn: Conn, pool: Pool) -> None:
    """A worker stopping mid-run leaves the run failed with the reason, not running forever."""
    started = asyncio.Event()

    async def endless(at: datetime) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()
        return {}

    scheduler = Scheduler(
        pool, FakeClock(NOW), OSLO, {"reconcile": ScheduledTask("30 2 * * *", endless)}
    )
    task = asyncio.create_task(scheduler.run_once())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [(_, _, status, error, finished)] = _runs(conn)
    assert (status, finished) == ("failed", True)
    assert error == "cancelled: the worker stopped during the run"


def _insert_running(conn: Conn, slot: datetime, heartbeat: datetime, worker: str) -> None:
    conn.execute(
        "INSERT INTO scheduled_runs (job, slot, status, started_at, heartbeat_at, worker)"
        " VALUES ('expiry_check', %s, 'running', %s, %s, %s)",
        [slot, heartbeat, heartbeat, worker],
    )


async def test_a_run_whose_worker_died_is_abandoned_and_its_slot_taken_over(
    conn: Conn, pool: Pool
) -> None:
    """A worker SIGKILLed mid-run leaves `running`; once its heartbeat is stale, another
    scheduler closes it as abandoned and runs the slot again, on the same row."""
    _insert_running(conn, TODAYS_SLOT, NOW - timedelta(seconds=91), "dead-worker")
    job = Counting()
    clock = FakeClock(NOW)
    scheduler = Scheduler(pool, clock, OSLO, {"expiry_check": ScheduledTask("0 2 * * *", job)},
                          worker_id="survivor", stale_after_s=90)  # fmt: skip
    made = await scheduler.run_once()
    assert [(r.job, r.slot, r.status, r.attempt) for r in made] == [
        ("expiry_check", TODAYS_SLOT, "succeeded", 2)
    ]
    assert job.calls == [NOW]
    row = conn.execute(
        "SELECT status, worker, attempts, error FROM scheduled_runs WHERE job = 'expiry_check'"
    ).fetchall()
    assert row == [("succeeded", "survivor", 2, None)]
    assert await scheduler.run_once() == []


async def test_a_run_with_a_fresh_heartbeat_is_left_alone(conn: Conn, pool: Pool) -> None:
    """A long run that still beats is not someone else's to take."""
    _insert_running(conn, TODAYS_SLOT, NOW - timedelta(seconds=89), "busy-worker")
    job = Counting()
    scheduler = Scheduler(pool, FakeClock(NOW), OSLO,
                          {"expiry_check": ScheduledTask("0 2 * * *", job)},
                          worker_id="other", stale_after_s=90)  # fmt: skip
    assert await scheduler.run_once() == []
    assert job.calls == []
    assert _runs(conn) == [("expiry_check", TODAYS_SLOT, "running", None, False)]


async def test_an_abandoned_older_slot_is_closed_and_the_due_one_runs(
    conn: Conn, pool: Pool
) -> None:
    """Died three nights ago: that run is closed as abandoned (visible to operators), and only
    today's slot runs."""
    old_slot = TODAYS_SLOT - timedelta(days=3)
    _insert_running(conn, old_slot, old_slot + timedelta(minutes=1), "dead-worker")
    job = Counting()
    scheduler = Scheduler(pool, FakeClock(NOW), OSLO,
                          {"expiry_check": ScheduledTask("0 2 * * *", job)},
                          worker_id="survivor")  # fmt: skip
    made = await scheduler.run_once()
    assert [(r.slot, r.status) for r in made] == [(TODAYS_SLOT, "succeeded")]
    runs = _runs(conn)
    assert [(slot, status) for _, slot, status, _, _ in runs] == [
        (old_slot, "abandoned"),
        (TODAYS_SLOT, "succeeded"),
    ]
    assert runs[0][3].startswith("abandoned: no heartbeat from dead-worker since ")


async def test_two_schedulers_racing_to_take_over_run_the_slot_once(
    conn: Conn, pool: Pool, second_pool: Pool
) -> None:
    _insert_running(conn, TODAYS_SLOT, NOW - timedelta(hours=1), "dead-worker")
    job = Counting()
    clock = FakeClock(NOW)
    jobs = {"expiry_check": ScheduledTask("0 2 * * *", job)}
    one = Scheduler(pool, clock, OSLO, jobs, worker_id="worker-1")
    two = Scheduler(second_pool, clock, OSLO, jobs, worker_id="worker-2")
    made = await asyncio.gather(one.run_once(), two.run_once())
    assert sorted(len(records) for records in made) == [0, 1]
    assert job.calls == [NOW]
    assert conn.execute("SELECT status, attempts FROM scheduled_runs").fetchall() == [
        ("succeeded", 2)
    ]


async def test_a_worker_whose_run_was_taken_over_cannot_record_its_outcome(
    conn: Conn, pool: Pool
) -> None:
    """The slow original finishing late must not overwrite the run that replaced it."""
    from hlfsync.db import scheduled_runs as runs

    claimed = await runs.claim(pool, job="expiry_check", slot=TODAYS_SLOT, worker="slow",
                               now=NOW - timedelta(hours=1))  # fmt: skip
    assert claimed is not None
    run_id, attempt = claimed
    assert attempt == 1
    scheduler = Scheduler(pool, FakeClock(NOW), OSLO,
                          {"expiry_check": ScheduledTask("0 2 * * *", Counting())},
                          worker_id="survivor")  # fmt: skip
    assert len(await scheduler.run_once()) == 1
    assert not await runs.finish(pool, run_id, worker="slow", status="failed", now=NOW)
    assert not await runs.heartbeat(pool, run_id, worker="slow", now=NOW)
    assert conn.execute("SELECT status, worker FROM scheduled_runs").fetchall() == [
        ("succeeded", "survivor")
    ]


def test_heartbeat_must_be_shorter_than_the_staleness_limit() -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        Scheduler(None, FakeClock(NOW), OSLO, {}, heartbeat_s=90, stale_after_s=90)  # type: ignore[arg-type]


async def test_a_running_job_sends_heartbeats(conn: Conn, pool: Pool) -> None:
    clock = FakeClock(NOW)
    seen: list[datetime] = []

    async def slow(at: datetime) -> dict[str, Any]:
        clock.advance(timedelta(seconds=30))
        for _ in range(200):  # wait for a beat; bounded, never seconds
            await asyncio.sleep(0.01)
            row = conn.execute("SELECT heartbeat_at FROM scheduled_runs").fetchone()
            if row is not None and row[0] > NOW:
                seen.append(row[0])
                break
        return {}

    scheduler = Scheduler(pool, clock, OSLO, {"expiry_check": ScheduledTask("0 2 * * *", slow)},
                          worker_id="w", heartbeat_s=0.02, stale_after_s=90)  # fmt: skip
    await scheduler.run_once()
    assert seen == [NOW + timedelta(seconds=30)]


async def test_a_run_by_hand_is_recorded_beside_the_scheduled_ones(conn: Conn, pool: Pool) -> None:
    """`run_by_hand` runs the task at the clock's instant and records it in its own slot (its
    start), succeeded, with the stats the caller keeps; a run that raises records nothing."""
    from hlfsync import tasks

    clock = FakeClock(NOW)
    job = Counting()
    result = await tasks.run_by_hand(
        pool, "expiry_check", job, clock=clock, stats=lambda stats: {"n": stats["n"]}
    )
    assert job.calls == [NOW]
    assert result == {"at": NOW.isoformat(), "n": 1}
    rows = conn.execute(
        "SELECT job, slot, status, started_at, worker LIKE 'cli@%', stats, error"
        " FROM scheduled_runs"
    ).fetchall()
    assert rows == [("expiry_check", NOW, "succeeded", NOW, True, {"n": 1}, None)]
    clock.advance(60)
    with pytest.raises(RuntimeError):
        await tasks.run_by_hand(pool, "expiry_check", failing, clock=clock, stats=dict)
    assert conn.execute("SELECT count(*) FROM scheduled_runs").fetchone() == (1,)
