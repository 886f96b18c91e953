"""The scheduled tasks: what each one does, called alike by the worker's scheduler and the CLI.

`default_tasks` is what the worker's scheduler runs: the database's tasks (`BUILDERS`; a name
must be one scheduled_runs.job allows) plus `extra`, such as `remote_tasks` (the ones that call
Dynamics). A command that runs a task by hand calls the same function (here, or
`db.reconcile.reconcile` for reconciliation) and records the run through `run_by_hand`, as the
scheduler records its own.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from hlfsync.core import expiry as rules
from hlfsync.db import expiry, reconcile, scheduled_runs
from hlfsync.db.queue import BULK_PRIORITY
from hlfsync.worker import health, push_health
from hlfsync.worker.scheduler import ScheduledTask

if TYPE_CHECKING:
    from hlfsync.core.clock import Clock
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import Pool
    from hlfsync.dynamics.port import DynamicsClient
    from hlfsync.notify.base import Notifier
    from hlfsync.settings import Settings

# What a task returns: JSON-ready stats, as scheduled_runs.stats keeps them.
Stats = dict[str, Any]
Result = TypeVar("Result")

# Hourly, off the top of the hour when other jobs tend to run; it should never find anything.
COMPENSATION_SCHEDULE = "17 * * * *"
SCHEDULER_ACTOR = "scheduler:expiry_check"
# Smaller pages in the worker: each is parsed holding the interpreter lock, which the live loop
# on the other thread then waits for.
SCHEDULED_PAGE_SIZE = 1000


# --- the tasks --------------------------------------------------------------------------------


async def expiry_check(
    pool: Pool, *, today: date, actor: str, now: datetime | None = None
) -> Stats:
    """The nightly expiry check for `today` (a date in HLF's time zone); idempotent.

    Committed in chunks of mentors, a few at once (`db.expiry.run_expiry_check`).
    """
    return await expiry.run_expiry_check(pool, today, actor, now=now)


async def compensation_check(pool: Pool, *, now: datetime) -> Stats:
    """Duplicate reminders or pauses for one certification period: alert operations if any."""
    return await expiry.run_compensation(pool, now=now)


async def health_check(
    pool: Pool,
    client: DynamicsClient,
    breaker: DynamicsCircuitBreaker,
    clock: Clock,
    notifier: Notifier | None,
) -> Stats:
    """Dynamics' checks (token, WhoAmI, entity set, listing field), recorded; the push
    credentials too, checked and recorded the same way, when there is a notifier."""
    result = await health.check_credentials(pool, client, breaker, clock)
    if notifier is not None:
        push = await push_health.check_push_credentials(pool, notifier, clock)
        result["push"] = {"status": push.status, "detail": push.detail}
    return result


async def run_by_hand(
    pool: Pool,
    job: str,
    run: Callable[[datetime], Awaitable[Result]],
    *,
    clock: Clock,
    stats: Callable[[Result], Stats],
) -> Result:
    """Run a task now, outside its schedule, and record the run beside the scheduled ones (in
    its own slot, its start). A run that raises is not recorded: the error reaches the caller."""
    started = clock.now()
    result = await run(started)
    await scheduled_runs.record_manual_run(
        pool, job=job, started=started, finished=clock.now(), stats=stats(result),
        worker=f"cli@{socket.gethostname()}",
    )  # fmt: skip
    return result


# --- the schedule -----------------------------------------------------------------------------

# A builder gets what any job may need; the clock is for jobs that read the time again while
# they run (a health check timing its call), the start instant comes in as the job's argument.
TaskBuilder = Callable[["Settings", "Pool", "Clock"], ScheduledTask]


def _expiry_job(settings: Settings, pool: Pool, clock: Clock) -> ScheduledTask:
    zone = settings.zone

    async def run(at: datetime) -> Stats:
        # "Today" is the date in HLF's zone at the run's start: 23:30 UTC on 31 March is 1 April
        # in Oslo. Rows are stamped with the same instant.
        today = rules.local_date(at, zone)
        return await expiry_check(pool, today=today, actor=SCHEDULER_ACTOR, now=at)

    return ScheduledTask(cron=settings.expiry_schedule, run=run)


def _compensation_job(settings: Settings, pool: Pool, clock: Clock) -> ScheduledTask:
    async def run(at: datetime) -> Stats:
        return await compensation_check(pool, now=at)

    return ScheduledTask(cron=COMPENSATION_SCHEDULE, run=run)


BUILDERS: dict[str, TaskBuilder] = {
    "expiry_check": _expiry_job,
    "compensation": _compensation_job,
}


def remote_tasks(
    settings: Settings,
    pool: Pool,
    clock: Clock,
    *,
    client: DynamicsClient,
    breaker: DynamicsCircuitBreaker,
    notifier: Notifier | None = None,
) -> dict[str, ScheduledTask]:
    """The tasks that call Dynamics: the credential health check and reconciliation (not on
    webhook-v1, which has no read API to reconcile against; `reconcile` says so when asked)."""

    async def check(at: datetime) -> Stats:
        return await health_check(pool, client, breaker, clock, notifier)

    async def compare(at: datetime) -> Stats:
        # Bulk work: what it queues waits behind any person's change.
        page_size = min(settings.dynamics_page_size, SCHEDULED_PAGE_SIZE)
        report = await reconcile.reconcile(
            pool, client, now=at, dry_run=False, page_size=page_size, priority=BULK_PRIORITY
        )
        return report.summary()

    found = {"health_check": ScheduledTask(cron=settings.health_schedule, run=check)}
    if settings.dynamics_contract != "webhook-v1":
        found["reconcile"] = ScheduledTask(cron=settings.reconcile_schedule, run=compare)
    return found


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
