"""The scheduled jobs, as the scheduler and the CLI (for an external scheduler) both call them.

`default_tasks` is the registry the worker's scheduler runs: add a job by adding a builder to
`BUILDERS` (its name must be one scheduled_runs.job allows) or pass `extra` jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from hlfsync.core import expiry as rules
from hlfsync.core.clock import Clock
from hlfsync.db import expiry
from hlfsync.db.pool import Pool
from hlfsync.settings import Settings
from hlfsync.worker.scheduler import ScheduledTask

# Hourly, off the top of the hour when other jobs tend to run; it should never find anything.
COMPENSATION_SCHEDULE = "17 * * * *"
SCHEDULER_ACTOR = "scheduler:expiry_check"


async def expiry_check(
    pool: Pool, *, today: date, actor: str, now: datetime | None = None
) -> dict[str, Any]:
    """The nightly expiry check for `today` (a date in HLF's time zone); idempotent.

    Committed in chunks of mentors, a few at once (`db.expiry.arun_expiry_check_pooled`).
    """
    return await expiry.arun_expiry_check_pooled(pool, today, actor, now=now)


async def compensation_check(pool: Pool, *, now: datetime) -> dict[str, Any]:
    """Duplicate reminders or pauses for one certification period: alert operations if any."""
    async with pool.connection() as conn:
        return await expiry.arun_compensation(conn, now=now)


# A builder gets what any job may need; the clock is for jobs that read the time again while
# they run (a health check timing its call), the start instant comes in as the job's argument.
TaskBuilder = Callable[[Settings, Pool, Clock], ScheduledTask]


def _expiry_job(settings: Settings, pool: Pool, clock: Clock) -> ScheduledTask:
    zone = settings.zone

    async def run(at: datetime) -> dict[str, Any]:
        # "Today" is the date in HLF's zone at the run's start: 23:30 UTC on 31 March is 1 April
        # in Oslo. Rows are stamped with the same instant.
        today = rules.local_date(at, zone)
        return await expiry_check(pool, today=today, actor=SCHEDULER_ACTOR, now=at)

    return ScheduledTask(cron=settings.expiry_schedule, run=run)


def _compensation_job(settings: Settings, pool: Pool, clock: Clock) -> ScheduledTask:
    async def run(at: datetime) -> dict[str, Any]:
        return await compensation_check(pool, now=at)

    return ScheduledTask(cron=COMPENSATION_SCHEDULE, run=run)


BUILDERS: dict[str, TaskBuilder] = {
    "expiry_check": _expiry_job,
    "compensation": _compensation_job,
}


def default_tasks(
    settings: Settings,
    pool: Pool,
    clock: Clock,
    *,
    extra: Mapping[str, ScheduledTask] | None = None,
) -> dict[str, ScheduledTask]:
    """Every registered job built for this process, plus `extra` (which wins on a name)."""
    jobs = {name: build(settings, pool, clock) for name, build in BUILDERS.items()}
    jobs.update(extra or {})
    return jobs
