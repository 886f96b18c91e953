"""The date boundary: the scheduled expiry check works on the date in Oslo, which flips at Oslo
midnight (22:00 UTC in summer time), not at UTC midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hlfsync import settings, tasks
from hlfsync.db.pool import Pool
from hlfsync.testing import FakeClock
from hlfsync.worker.scheduler import ScheduledTask, Scheduler
from tests.integration.expiry.world import Conn, mentor, status, thresholds_sent, world

EXPIRES = date(2026, 3, 31)


def _jobs(db_url: str, pool: Pool, clock: FakeClock) -> dict[str, ScheduledTask]:
    return tasks.default_tasks(settings.load(database_url=db_url), pool, clock)


async def test_the_check_flips_to_the_next_day_at_oslo_midnight(
    db_url: str, conn: Conn, pool: Pool
) -> None:
    """At 23:30 Oslo (21:30 UTC) on 31 March the mentor stays; at 23:30 UTC it is 1 April."""
    m = mentor(conn, world(conn), 0, today=EXPIRES)
    clock = FakeClock(datetime(2026, 3, 31, 21, 30, tzinfo=UTC))
    job = _jobs(db_url, pool, clock)["expiry_check"]
    before = await job.run(clock.now())
    assert before["today"] == "2026-03-31"
    assert status(conn, m) == ("active", None)
    assert thresholds_sent(conn, m) == [7]  # 0 days left: the last reminder, not a pause
    after = await job.run(clock.set(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)))
    assert after["today"] == "2026-04-01"  # UTC still says 31 March
    assert status(conn, m) == ("paused", "certification_expired")


async def test_the_boundary_is_exactly_oslo_midnight(db_url: str, conn: Conn, pool: Pool) -> None:
    """21:59:59 UTC on 31 March is still 31 March in Oslo (CEST); 22:00:00 is 1 April."""
    m = mentor(conn, world(conn), 0, today=EXPIRES)
    clock = FakeClock(datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC))
    job = _jobs(db_url, pool, clock)["expiry_check"]
    assert (await job.run(clock.now()))["paused"] == 0
    assert (await job.run(clock.advance(1)))["paused"] == 1
    assert status(conn, m)[0] == "paused"


async def test_the_scheduler_runs_the_check_for_the_oslo_date(
    db_url: str, conn: Conn, pool: Pool
) -> None:
    """A scheduler started at 23:30 UTC on 31 March catches up the nightly slot for 1 April."""
    m = mentor(conn, world(conn), 0, today=EXPIRES)
    clock = FakeClock(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    jobs = _jobs(db_url, pool, clock)
    made = await Scheduler(pool, clock, settings.load().zone, jobs).run_once()
    [expiry_run] = [r for r in made if r.job == "expiry_check"]
    assert expiry_run.status == "succeeded"
    assert expiry_run.slot == datetime(2026, 3, 31, 0, tzinfo=UTC)  # 02:00 CEST on 31 March
    assert expiry_run.stats["today"] == "2026-04-01"
    assert status(conn, m)[0] == "paused"
    row = conn.execute(
        "SELECT status, stats ->> 'paused' FROM scheduled_runs WHERE job = 'expiry_check'"
    ).fetchone()
    assert row == ("succeeded", "1")
