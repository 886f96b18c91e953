"""Work run by hand against Dynamics and the database: the scheduled tasks (expiry check,
reconciliation, health), through the very functions the scheduler runs (`hlfsync.tasks`), and
break-glass."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from hlfsync.services import parts
from hlfsync.settings import Settings

if TYPE_CHECKING:
    from hlfsync.db.reconcile import ReconcileReport
    from hlfsync.tasks import Stats


async def expiry_check(settings: Settings, *, day: date | None, actor: str) -> Stats:
    """`hlfsync expiry-check`: reminders and auto-pause for a day (default: today in HLF's zone),
    recorded in scheduled_runs like the scheduler's runs."""
    from hlfsync import tasks
    from hlfsync.core.clock import SystemClock

    async with parts.pool(settings, max_size=2) as pool:

        async def run(at: datetime) -> Stats:
            return await tasks.expiry_check(pool, today=day or parts.today(settings), actor=actor)

        return await tasks.run_by_hand(
            pool, "expiry_check", run, clock=SystemClock(), stats=lambda stats: stats
        )


async def reconcile(settings: Settings, *, dry_run: bool) -> ReconcileReport:
    """`hlfsync reconcile`: compare Dynamics with the app and re-queue what diverges; a real
    run is recorded in scheduled_runs like the scheduler's."""
    from hlfsync import tasks
    from hlfsync.core.clock import SystemClock
    from hlfsync.db import reconcile

    clock = SystemClock()
    async with parts.dynamics(settings) as client, parts.pool(settings, max_size=2) as pool:

        async def run(at: datetime) -> ReconcileReport:
            page_size = settings.dynamics_page_size
            return await reconcile.reconcile(
                pool, client, now=at, dry_run=dry_run, page_size=page_size
            )

        if dry_run:
            return await run(clock.now())
        return await tasks.run_by_hand(
            pool, "reconcile", run, clock=clock, stats=lambda report: report.summary()
        )


async def health_check(settings: Settings) -> Stats:
    """`hlfsync health`: the scheduled health check run now, plus the operators' channel."""
    from hlfsync import tasks
    from hlfsync.core.clock import SystemClock
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.worker import push_health

    async with (
        parts.dynamics(settings) as client,
        parts.pool(settings, max_size=2) as pool,
        parts.notifier(settings) as notifier,
    ):
        breaker = DynamicsCircuitBreaker(pool, parts.breaker_config(settings))
        result = await tasks.health_check(pool, client, breaker, SystemClock(), notifier)
    channel = push_health.check_operator_channel(settings)
    result["operators"] = {"status": channel.status, "detail": channel.detail}
    return result


async def break_glass(
    settings: Settings,
    *,
    on_total: Callable[[int], None],
    on_progress: Callable[[int], None],
    on_checked: Callable[[str], None],
) -> Stats:
    """Check the credentials given on the spot, then push every divergent mentor's state."""
    from hlfsync.core.clock import SystemClock
    from hlfsync.worker import breakglass

    async with parts.dynamics(settings) as client, parts.pool(settings, max_size=20) as pool:
        identity = await client.who_am_i()  # raises AuthFailure for bad credentials
        on_checked(identity.user_id)
        summary = await breakglass.run(
            pool, client, SystemClock(), parts.retry_policy(settings),
            page_size=settings.dynamics_page_size, on_total=on_total, on_progress=on_progress,
            alternate_key_column=settings.dynamics_alternate_key_column,
        )  # fmt: skip
        return breakglass.describe(summary)
