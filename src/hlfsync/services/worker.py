"""The worker process: the sync worker, alert dispatcher and scheduler wired together, and the
long-running commands built on them (`worker`, `api`, `run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hlfsync.services import parts
from hlfsync.settings import Settings

if TYPE_CHECKING:
    import asyncio

    from hlfsync.core.clock import Clock
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import Pool
    from hlfsync.db.queue import Lane
    from hlfsync.dynamics.port import DynamicsClient
    from hlfsync.notify.base import Notifier
    from hlfsync.worker.background import Body, Build, Close, Outcome
    from hlfsync.worker.dispatcher import AlertDispatcher
    from hlfsync.worker.lag import LagProbe
    from hlfsync.worker.runner import SyncWorker
    from hlfsync.worker.scheduler import Scheduler


# gc.set_threshold in a worker process: young collections every 10,000 net allocations, a full
# one every 100 of them (see `beside_the_loop`). 50,000 measured the same in bench.latency, with
# longer young pauses and 6 MiB more RSS.
GC_THRESHOLDS = (10_000, 10, 10)


@dataclass
class WorkerServices:
    """What a worker process holds; `aclose()` releases it all."""

    url: str
    pool: Pool
    worker: SyncWorker
    dispatcher: AlertDispatcher
    client: DynamicsClient
    notifier: Notifier

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
    """The sync worker (every lane) and alert dispatcher, wired to PostgreSQL, Dynamics and
    FCM; `worker_forever` narrows the worker to the live lane and starts the background loop."""
    import os
    import socket

    from hlfsync.core.clock import SystemClock
    from hlfsync.db import links
    from hlfsync.db.pool import open_pool
    from hlfsync.dynamics.factory import build_client
    from hlfsync.notify import operators
    from hlfsync.notify.factory import build_notifier
    from hlfsync.worker.dispatcher import AlertDispatcher

    concurrency = concurrency or settings.worker_concurrency
    parts.retry_policy(settings)  # fails on a bad policy before anything is opened
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
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    if settings.dynamics_alternate_key_column is not None:
        await links.check_column(pool, settings.dynamics_alternate_key_column)
    worker = _sync_worker(settings, pool, url=url, client=client, clock=clock, worker_id=worker_id,
                          concurrency=concurrency)  # fmt: skip
    channels = operators.build_channels(settings)
    dispatcher = AlertDispatcher(pool, notifier, clock, channels=channels)
    return WorkerServices(url, pool, worker, dispatcher, client, notifier)


def _sync_worker(
    settings: Settings,
    pool: Pool,
    *,
    url: str,
    client: DynamicsClient,
    clock: Clock,
    worker_id: str,
    concurrency: int,
    lane: Lane | None = None,
    breaker: DynamicsCircuitBreaker | None = None,
) -> SyncWorker:
    """A sync loop over `pool` and `client` for `lane` (None: every lane)."""
    import random

    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.queue import EVERY, OperationStore
    from hlfsync.worker.handlers import CallSlots, SyncContext
    from hlfsync.worker.runner import SyncWorker

    ctx = SyncContext(
        store=OperationStore(pool, worker_id=worker_id),
        breaker=breaker or DynamicsCircuitBreaker(pool, parts.breaker_config(settings)),
        client=client,
        policy=parts.retry_policy(settings),
        clock=clock,
        rng=random.Random(),  # noqa: S311 - jitter, not secrets
        pool=pool,
        slots=CallSlots(concurrency),
        alternate_key_column=settings.dynamics_alternate_key_column,
    )
    return SyncWorker(
        ctx,
        url=url,
        concurrency=concurrency,
        lease_s=settings.worker_lease,
        poll_interval_s=settings.worker_poll_interval,
        enabled=settings.sync_enabled,
        lane=lane or EVERY,
    )


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


def _bulk_share(settings: Settings) -> int:
    """Bulk calls in flight: a share of the worker's, as when one loop ran both lanes."""
    from hlfsync.worker.runner import BULK_SHARE

    return max(1, settings.worker_concurrency // BULK_SHARE)


def bulk_lane(
    settings: Settings,
    pool: Pool,
    *,
    url: str,
    client: DynamicsClient,
    clock: Clock,
    worker_id: str,
    breaker: DynamicsCircuitBreaker,
    live_lag: LagProbe | None,
) -> SyncWorker:
    """The background loop's sync loop: bulk work only, its share of the calls, fewer of them
    while the live loop's probe (`live_lag`) says a person's change would wait."""
    from hlfsync.db.queue import BULK

    worker = _sync_worker(settings, pool, url=url, client=client, clock=clock,
                          worker_id=worker_id, concurrency=_bulk_share(settings), lane=BULK,
                          breaker=breaker)  # fmt: skip
    worker.lag = live_lag
    return worker


def background(
    settings: Settings, url: str, worker_id: str, live_lag: LagProbe | None = None
) -> Build:
    """A build for `worker.background.run_beside`: the scheduler, the bulk lane and the alert
    dispatcher, with their own pool, Dynamics client, notifier and breaker view, made on (and
    belonging to) the background thread. The bulk lane yields to `live_lag`, the live loop's
    probe: fewer bulk calls at once while a person's change would wait."""

    async def build() -> tuple[Body, Close]:
        import asyncio
        import contextlib

        from hlfsync.core.clock import SystemClock
        from hlfsync.db.breaker import DynamicsCircuitBreaker
        from hlfsync.db.pool import open_pool
        from hlfsync.dynamics.factory import build_client
        from hlfsync.notify import operators
        from hlfsync.notify.factory import build_notifier
        from hlfsync.worker import lanes
        from hlfsync.worker.dispatcher import AlertDispatcher
        from hlfsync.worker.process import dispatch_forever, wake_on

        # The scheduler's jobs due together (the expiry check on two), the bulk lane's writes
        # and the dispatcher; within what HLFSYNC_DB_POOL_SIZE allows a worker.
        size = max(2, min(settings.db_pool_size, _bulk_share(settings) + 5))
        pool = await open_pool(url, max_size=size, min_size=2, name="hlfsync-background")
        client = build_client(settings)
        notifier = build_notifier(settings)
        clock = SystemClock()
        breaker = DynamicsCircuitBreaker(pool, parts.breaker_config(settings))
        worker = bulk_lane(settings, pool, url=url, client=client, clock=clock,
                           worker_id=worker_id, breaker=breaker, live_lag=live_lag)  # fmt: skip
        dispatcher = AlertDispatcher(
            pool, notifier, clock, channels=operators.build_channels(settings)
        )
        scheduler = build_scheduler(settings, pool, clock, client, breaker, notifier=notifier)

        async def run(stop: asyncio.Event) -> None:
            alerts = asyncio.Event()
            listening = asyncio.create_task(wake_on(url, "hlfsync_alerts", alerts, stop))
            try:
                await asyncio.gather(
                    scheduler.run(stop),
                    lanes.run_when_holding(url, worker.run, stop),
                    dispatch_forever(dispatcher, alerts, stop, worker.poll_interval_s),
                )
            finally:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening

        async def close() -> None:
            await client.aclose()
            await parts.close_notifier(notifier)
            await dispatcher.aclose()
            await pool.close()

        return run, close

    return build


def beside_the_loop(
    settings: Settings, built: WorkerServices, stop: asyncio.Event, ended: Outcome
) -> list[asyncio.Task[None]]:
    """The background loop, the loop-lag probe, and the worker's /metrics if asked."""
    import asyncio
    import gc

    from hlfsync import metrics
    from hlfsync.db.queue import LIVE
    from hlfsync.worker.background import run_beside
    from hlfsync.worker.health import warm_up
    from hlfsync.worker.lag import LagProbe, watch_gc

    if settings.worker_metrics_port is not None:
        metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
    built.worker.lane = LIVE  # the bulk lane runs on the background loop
    lag = LagProbe(settings.loop_lag_interval)
    watch_gc()
    built.worker.lag = lag
    behind = background(settings, built.url, built.worker.ctx.store.worker_id, lag)
    beside = asyncio.create_task(
        run_beside(behind, stop, ended, nice=settings.worker_bulk_nice), name="background"
    )
    probe = asyncio.create_task(lag.run(stop), name="lag-probe")
    # The live client's token, fetched now rather than by the first person's change; a change
    # arriving meanwhile shares this request.
    warming = asyncio.create_task(warm_up(built.client.credential_checks()), name="warm-up")
    # What start-up made lives for the whole run: out of the collector's sight, a full
    # collection (one holds the interpreter lock throughout) walks only what came after.
    gc.freeze()
    # Collections hold every thread, the live loop's too. Python's default (a young collection
    # every 700 net allocations, a full one every 100 young ones while the frozen start-up keeps
    # the long-lived count small) made about five full collections a second under a night's
    # bulk work, each holding the live loop up to tens of milliseconds
    # (`hlfsync_gc_pause_seconds`). Reference counting frees almost everything; the collector is
    # for cycles, which can wait a little longer.
    gc.set_threshold(*GC_THRESHOLDS)
    return [beside, probe, warming]


# --- long-running commands --------------------------------------------------------------------


async def worker_once(settings: Settings) -> tuple[int, int]:
    """Drain what is due (sync operations, then alerts) and return the counts."""
    built = await build_worker(settings)
    try:
        handled = await built.worker.run_once()
        # Round after round: a first night's 115,000 pushes are due at once, and a cron-driven
        # `--once` that sent one round of 50 a minute would take days over them. A held channel
        # or nothing due ends it.
        sent = 0
        while attempted := await built.dispatcher.run_once():
            sent += attempted
    finally:
        await built.aclose()
    return handled, sent


async def worker_forever(settings: Settings, *, api: bool = False) -> None:
    """Run until SIGTERM/SIGINT, the HTTP API beside the loops when `api`; in-flight calls
    finish first."""
    import asyncio

    from hlfsync.worker import process
    from hlfsync.worker.background import BackgroundFailed, Outcome

    built = await build_worker(settings)
    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    ended = Outcome()
    try:
        beside = beside_the_loop(settings, built, stop, ended)
        if api:
            # Only here: the API's imports (FastAPI, templates) cost a worker 25 MiB of RSS.
            from hlfsync.api import serve

            pointed = settings.model_copy(update={"database_url": built.url})
            serving = serve(pointed, stop, pool=built.pool, on_ready=_announce_api)
            beside.append(asyncio.create_task(serving, name="api"))
        await process.serve(built.worker, None, stop, extra=beside)
    finally:
        await built.aclose()
    if ended.error is not None:
        raise BackgroundFailed(ended.error)


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
