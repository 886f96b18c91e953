"""The worker process: the sync worker, alert dispatcher and scheduler wired together, and the
long-running commands built on them (`worker`, `api`, `run`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hlfsync.services import parts
from hlfsync.settings import Settings

if TYPE_CHECKING:
    import asyncio

    from hlfsync.core.clock import Clock
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import Pool
    from hlfsync.dynamics.port import DynamicsClient
    from hlfsync.notify.base import Notifier
    from hlfsync.worker.dispatcher import AlertDispatcher
    from hlfsync.worker.runner import SyncWorker
    from hlfsync.worker.scheduler import Scheduler, SchedulerBuild

# The scheduler's thread shares the interpreter lock: a thread that wants it back asks after
# this long (Python's default, 5 ms, would be the live loop's wait at every step).
SWITCH_INTERVAL_S = 0.0005


@dataclass
class WorkerServices:
    """What a worker process holds; `aclose()` releases it all."""

    url: str
    pool: Pool
    worker: SyncWorker
    dispatcher: AlertDispatcher
    client: DynamicsClient
    notifier: Notifier
    scheduler: Scheduler

    async def aclose(self) -> None:
        await self.client.aclose()
        await parts.close_notifier(self.notifier)
        await self.dispatcher.aclose()
        await self.pool.close()


async def build_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    clock: Clock | None = None,
    client: DynamicsClient | None = None,
    notifier: Notifier | None = None,
    worker_id: str | None = None,
) -> WorkerServices:
    """The sync worker and alert dispatcher, wired to PostgreSQL, Dynamics and FCM."""
    import os
    import random
    import socket

    from hlfsync.core.clock import SystemClock
    from hlfsync.db import links
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import open_pool
    from hlfsync.db.queue import OperationStore
    from hlfsync.dynamics.factory import build_client
    from hlfsync.notify import operators
    from hlfsync.notify.factory import build_notifier
    from hlfsync.worker.dispatcher import AlertDispatcher
    from hlfsync.worker.handlers import CallSlots, SyncContext
    from hlfsync.worker.runner import SyncWorker

    concurrency = concurrency or settings.worker_concurrency
    policy = parts.retry_policy(settings)  # fails on a bad policy before anything is opened
    client = client if client is not None else build_client(settings)
    notifier = notifier if notifier is not None else build_notifier(settings)
    url = parts.database_url(settings)
    # Writes are short and successes share one statement, so a few connections serve many
    # calls in flight; HLFSYNC_DB_POOL_SIZE caps what each worker takes from the server
    # (Supabase counts them). Opened in full at start: a pool that grows under load makes the
    # first calls queue.
    size = max(2, min(concurrency + 4, settings.db_pool_size))
    pool = await open_pool(url, max_size=size, min_size=size)
    clock = clock or SystemClock()
    ctx = SyncContext(
        store=OperationStore(pool, worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}"),
        breaker=DynamicsCircuitBreaker(pool, parts.breaker_config(settings)),
        client=client,
        policy=policy,
        clock=clock,
        rng=random.Random(),  # noqa: S311 - jitter, not secrets
        pool=pool,
        slots=CallSlots(concurrency),
        alternate_key_column=settings.dynamics_alternate_key_column,
    )
    if settings.dynamics_alternate_key_column is not None:
        await links.check_column(pool, settings.dynamics_alternate_key_column)
    worker = SyncWorker(
        ctx,
        url=url,
        concurrency=concurrency,
        lease_s=settings.worker_lease,
        poll_interval_s=settings.worker_poll_interval,
        enabled=settings.sync_enabled,
    )
    channels = operators.build_channels(settings)
    dispatcher = AlertDispatcher(pool, notifier, clock, channels=channels)
    scheduler = build_scheduler(settings, pool, clock, client, ctx.breaker, notifier=notifier)
    return WorkerServices(url, pool, worker, dispatcher, client, notifier, scheduler)


def build_scheduler(
    settings: Settings,
    pool: Pool,
    clock: Clock,
    client: DynamicsClient,
    breaker: DynamicsCircuitBreaker,
    *,
    notifier: Notifier | None = None,
) -> Scheduler:
    """The worker's scheduler: expiry check, compensation, reconciliation, credential health."""
    from hlfsync import tasks
    from hlfsync.worker.scheduler import Scheduler

    remote = tasks.remote_tasks(
        settings, pool, clock, client=client, breaker=breaker, notifier=notifier
    )
    jobs = tasks.default_tasks(settings, pool, clock, extra=remote)
    return Scheduler(pool, clock, settings.zone, jobs)


def scheduler_off_loop(settings: Settings, url: str) -> SchedulerBuild:
    """A build for `worker.scheduler.run_off_loop`: a scheduler with its own connections,
    Dynamics client, notifier and breaker view, made on (and belonging to) its thread."""

    async def build() -> tuple[Scheduler, Callable[[], Awaitable[None]]]:
        from hlfsync.core.clock import SystemClock
        from hlfsync.db.breaker import DynamicsCircuitBreaker
        from hlfsync.db.pool import open_pool
        from hlfsync.dynamics.factory import build_client
        from hlfsync.notify.factory import build_notifier

        # Jobs due together run side by side (the expiry check on two), each with a heartbeat.
        pool = await open_pool(url, max_size=4, min_size=1, name="hlfsync-scheduler")
        client = build_client(settings)
        # Its own notifier too, for the push-credentials check: clients belong to their loop.
        notifier = build_notifier(settings)
        breaker = DynamicsCircuitBreaker(pool, parts.breaker_config(settings))
        scheduler = build_scheduler(
            settings, pool, SystemClock(), client, breaker, notifier=notifier
        )

        async def close() -> None:
            await client.aclose()
            await parts.close_notifier(notifier)
            await pool.close()

        return scheduler, close

    return build


def _beside_the_loop(
    settings: Settings, built: WorkerServices, stop: asyncio.Event
) -> list[asyncio.Task[None]]:
    """The scheduler on its own thread, the loop-lag probe, and the worker's /metrics if asked."""
    import asyncio
    import gc
    import sys

    from hlfsync import metrics
    from hlfsync.worker.lag import LagProbe
    from hlfsync.worker.scheduler import run_off_loop

    if settings.worker_metrics_port is not None:
        metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    schedule = asyncio.create_task(
        run_off_loop(scheduler_off_loop(settings, built.url), stop), name="scheduler"
    )
    lag = LagProbe(settings.loop_lag_interval)
    built.worker.lag = lag  # bulk work yields when the loop is late
    probe = asyncio.create_task(lag.run(stop), name="lag-probe")
    # What start-up made lives for the whole run: out of the collector's sight, a full
    # collection (one holds the interpreter lock throughout) walks only what came after.
    gc.freeze()
    return [schedule, probe]


# --- long-running commands --------------------------------------------------------------------


async def worker_once(settings: Settings) -> tuple[int, int]:
    """Drain what is due (sync operations, then alerts) and return the counts."""
    built = await build_worker(settings)
    try:
        handled = await built.worker.run_once()
        sent = await built.dispatcher.run_once()
    finally:
        await built.aclose()
    return handled, sent


async def worker_forever(settings: Settings, *, api: bool = False) -> None:
    """Run until SIGTERM/SIGINT, the HTTP API beside the loops when `api`; in-flight calls
    finish first."""
    import asyncio

    from hlfsync.worker import process

    built = await build_worker(settings)
    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    try:
        beside = _beside_the_loop(settings, built, stop)
        if api:
            # Only here: the API's imports (FastAPI, templates) cost a worker 25 MiB of RSS.
            from hlfsync.api import serve

            pointed = settings.model_copy(update={"database_url": built.url})
            serving = serve(pointed, stop, pool=built.pool, on_ready=_announce_api)
            beside.append(asyncio.create_task(serving, name="api"))
        await process.serve(built.worker, built.dispatcher, stop, extra=beside)
    finally:
        await built.aclose()


def _announce_api(where: str) -> None:
    print(f"hlfsync api listening on {where}", flush=True)


async def api_forever(settings: Settings, *, host: str | None, port: int | None) -> None:
    """`hlfsync api`: the HTTP API and dashboard until SIGTERM/SIGINT."""
    import asyncio

    from hlfsync.api import serve
    from hlfsync.worker import process

    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    pointed = settings.model_copy(update={"database_url": parts.database_url(settings)})
    await serve(pointed, stop, host=host, port=port, on_ready=_announce_api)


async def run_forever(settings: Settings) -> None:
    """`hlfsync run`: worker, scheduler and API in one process, until SIGTERM/SIGINT."""
    await worker_forever(settings, api=True)
