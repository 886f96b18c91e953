"""The composition root: builds what a command, the worker or the API needs from Settings.

Commands call one function here; nothing else wires adapters together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from hlfsync.core.status import Snapshot
from hlfsync.db import connect, migrate
from hlfsync.db import seed as seed_mod
from hlfsync.db import status as status_mod
from hlfsync.settings import Settings


def database_url(settings: Settings, *, upgrade: bool = True) -> str:
    """The database URL, with the schema brought up to date unless told otherwise."""
    url = connect.database_url(settings)
    if upgrade:
        with connect.connect(url) as conn:
            migrate.upgrade(conn)
    return url


def today(settings: Settings) -> date:
    """What "today" is in HLF's time zone (the scheduler's rule: `core.expiry.local_date`)."""
    from datetime import UTC

    from hlfsync.core import expiry

    return expiry.local_date(datetime.now(UTC), settings.zone)


def seed(
    settings: Settings, *, mentors: int, orgs: int, chapters: int | None, seed: int
) -> dict[str, Any]:
    url = database_url(settings)
    with connect.connect(url) as conn:
        result = seed_mod.seed(
            conn, mentors=mentors, orgs=orgs, chapters=chapters, today=today(settings), seed=seed
        )
    counts: dict[str, Any] = result.counts()
    counts["sandbox_contacts"] = (
        len(result.contacts) if push_contacts_to_sandbox(settings, result.contacts) else 0
    )
    return counts


def status_snapshot(settings: Settings) -> Snapshot:
    url = connect.database_url(settings)
    with connect.connect(url) as conn:
        return status_mod.read(conn)


# --- the worker -----------------------------------------------------------------------------


@dataclass
class WorkerServices:
    """What a worker process holds; `aclose()` releases it all."""

    url: str
    pool: Any
    worker: Any
    dispatcher: Any
    client: Any
    notifier: Any
    scheduler: Any = None

    async def aclose(self) -> None:
        for closable in (self.client, self.notifier, self.dispatcher):
            close = getattr(closable, "aclose", None)
            if close is not None:
                await close()
        await self.pool.close()


def retry_policy(settings: Settings) -> Any:
    from hlfsync.core import retry

    return retry.RetryPolicy.from_settings(
        settings.retry_max_retries,
        settings.retry_base_delay,
        settings.retry_multiplier,
        settings.retry_max_delay,
        settings.retry_jitter,
    )


def breaker_config(settings: Settings) -> Any:
    from hlfsync.core.breaker import BreakerConfig

    return BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown=timedelta(seconds=settings.breaker_cooldown),
        probe_lease=timedelta(seconds=max(settings.dynamics_timeout * 2, 10.0)),
    )


async def build_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    clock: Any = None,
    client: Any = None,
    notifier: Any = None,
    worker_id: str | None = None,
) -> WorkerServices:
    """The sync worker and alert dispatcher, wired to PostgreSQL, Dynamics and FCM."""
    import os
    import random
    import socket

    from hlfsync.core.clock import SystemClock
    from hlfsync.dataverse.factory import build_client
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import open_pool
    from hlfsync.db.queue import OperationStore
    from hlfsync.notify.factory import build_notifier
    from hlfsync.worker.dispatcher import AlertDispatcher
    from hlfsync.worker.handlers import CallSlots, SyncContext
    from hlfsync.worker.runner import SyncWorker

    concurrency = concurrency or settings.worker_concurrency
    retry_policy(settings)  # fail on a bad policy before opening anything
    client = client if client is not None else build_client(settings)
    notifier = notifier if notifier is not None else build_notifier(settings)
    url = database_url(settings)
    # Writes are short and successes share one statement, so a few connections serve many
    # calls in flight; HLFSYNC_DB_POOL_SIZE caps what each worker takes from the server
    # (Supabase counts them). Opened in full at start: a pool that grows under load makes the
    # first calls queue.
    size = max(2, min(concurrency + 4, settings.db_pool_size))
    pool = await open_pool(url, max_size=size, min_size=size)
    clock = clock or SystemClock()
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    ctx = SyncContext(
        store=OperationStore(pool, worker_id=worker_id),
        breaker=DynamicsCircuitBreaker(pool, breaker_config(settings)),
        client=client,
        policy=retry_policy(settings),
        clock=clock,
        rng=random.Random(),  # noqa: S311 - jitter, not secrets
        pool=pool,
        slots=CallSlots(concurrency),
        alternate_key_column=settings.dynamics_alternate_key_column,
    )
    if settings.dynamics_alternate_key_column is not None:
        from hlfsync.db import links

        await links.check_column(pool, settings.dynamics_alternate_key_column)
    worker = SyncWorker(
        ctx,
        url=url,
        concurrency=concurrency,
        lease_s=settings.worker_lease,
        poll_interval_s=settings.worker_poll_interval,
        enabled=settings.sync_enabled,
    )
    from hlfsync.notify import operators

    channels = operators.build_channels(settings)
    dispatcher = AlertDispatcher(pool, notifier, clock, channels=channels)
    scheduler = build_scheduler(settings, pool, clock, client, ctx.breaker, notifier=notifier)
    return WorkerServices(url, pool, worker, dispatcher, client, notifier, scheduler)


def build_scheduler(
    settings: Settings, pool: Any, clock: Any, client: Any, breaker: Any, *, notifier: Any = None
) -> Any:
    """The worker's scheduler: expiry check, compensation, reconciliation, credential health."""
    from hlfsync import tasks
    from hlfsync.db import reconcile as reconcile_mod
    from hlfsync.db.queue import BULK_PRIORITY
    from hlfsync.worker import push_health
    from hlfsync.worker.health import check_credentials
    from hlfsync.worker.scheduler import ScheduledTask, Scheduler

    async def health_job(at: datetime) -> dict[str, Any]:
        result = await check_credentials(pool, client, breaker, clock)
        if notifier is not None:  # the push credentials, checked and recorded the same way
            push = await push_health.check_push_credentials(pool, notifier, clock)
            result["push"] = {"status": push.status, "detail": push.detail}
        return result

    async def reconcile_job(at: datetime) -> dict[str, Any]:
        # Bulk work: what it queues waits behind any person's change.
        # Smaller pages in the worker: each is parsed holding the interpreter lock, which the
        # live loop on the other thread then waits for.
        report = await reconcile_mod.reconcile(
            pool, client, now=at, dry_run=False, priority=BULK_PRIORITY,
            page_size=min(settings.dynamics_page_size, SCHEDULED_PAGE_SIZE),
        )  # fmt: skip
        return {k: v for k, v in report.stats().items() if "sample" not in k}

    extra = {"health_check": ScheduledTask(cron=settings.health_schedule, run=health_job)}
    # webhook-v1 has no read API: nothing to reconcile against (reconcile says so when asked).
    if settings.dynamics_contract != "webhook-v1":
        extra["reconcile"] = ScheduledTask(cron=settings.reconcile_schedule, run=reconcile_job)
    jobs = tasks.default_tasks(settings, pool, clock, extra=extra)
    return Scheduler(pool, clock, settings.zone, jobs)


async def scheduler_off_loop(settings: Settings, url: str) -> Any:
    """A build for `worker.scheduler.run_off_loop`: a scheduler with its own connections,
    Dynamics client and breaker view, made on (and belonging to) the scheduler's thread."""
    from hlfsync.core.clock import SystemClock
    from hlfsync.dataverse.factory import build_client
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import open_pool
    from hlfsync.notify.factory import build_notifier

    async def build() -> Any:
        # Jobs due together run side by side (the expiry check on two), each with a heartbeat.
        pool = await open_pool(url, max_size=4, min_size=1, name="hlfsync-scheduler")
        client = build_client(settings)
        # Its own notifier too, for the scheduled push-credentials check: clients belong to
        # the loop that made them.
        notifier = build_notifier(settings)
        breaker = DynamicsCircuitBreaker(pool, breaker_config(settings))
        scheduler = build_scheduler(
            settings, pool, SystemClock(), client, breaker, notifier=notifier
        )

        async def close() -> None:
            await client.aclose()
            close_notifier = getattr(notifier, "aclose", None)
            if close_notifier is not None:
                await close_notifier()
            await pool.close()

        return scheduler, close

    return build


SWITCH_INTERVAL_S = 0.0005
SCHEDULED_PAGE_SIZE = 1000


async def _beside_the_loop(settings: Settings, built: WorkerServices, stop: Any) -> tuple[Any, Any]:
    """The scheduler on its own thread, the loop-lag probe, and the worker's /metrics if asked."""
    import asyncio
    import gc
    import sys

    from hlfsync.worker.lag import LagProbe
    from hlfsync.worker.scheduler import run_off_loop

    if settings.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        from hlfsync.core.errors import ConfigError

        try:
            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        except OSError as exc:
            raise ConfigError(
                f"HLFSYNC_WORKER_METRICS_PORT: cannot listen on {settings.worker_metrics_host}:"
                f"{settings.worker_metrics_port} ({exc.strerror or exc})"
            ) from exc
    # The scheduler's thread shares the interpreter lock: a thread that wants it back asks
    # after this long (Python's default, 5 ms, would be the live loop's wait at every step).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    schedule = asyncio.create_task(
        run_off_loop(await scheduler_off_loop(settings, built.url), stop), name="scheduler"
    )
    lag = LagProbe(settings.loop_lag_interval)
    built.worker.lag = lag  # bulk work yields when the loop is late
    probe = asyncio.create_task(lag.run(stop), name="lag-probe")
    # What start-up made lives for the whole run: out of the collector's sight, a full
    # collection (one holds the interpreter lock throughout) walks only what came after.
    gc.freeze()
    return schedule, probe


async def worker_once(settings: Settings) -> tuple[int, int]:
    """Drain what is due (sync operations, then alerts) and return the counts."""
    built = await build_worker(settings)
    try:
        handled = await built.worker.run_once()
        sent = await built.dispatcher.run_once()
    finally:
        await built.aclose()
    return handled, sent


async def worker_forever(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; in-flight calls finish first."""
    import asyncio

    from hlfsync.worker import process

    built = await build_worker(settings)
    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    try:
        schedule, probe = await _beside_the_loop(settings, built, stop)
        await process.serve(built.worker, built.dispatcher, stop, extra=[schedule, probe])
    finally:
        await built.aclose()


async def health_check(settings: Settings) -> dict[str, Any]:
    """`hlfsync health`: token + WhoAmI now, recorded like the scheduled check."""
    from hlfsync.core.clock import SystemClock
    from hlfsync.dataverse.factory import build_client
    from hlfsync.db.breaker import DynamicsCircuitBreaker
    from hlfsync.db.pool import open_pool
    from hlfsync.worker.health import check_credentials

    client = build_client(settings)
    pool = await open_pool(database_url(settings), max_size=2)
    try:
        breaker = DynamicsCircuitBreaker(pool, breaker_config(settings))
        result = await check_credentials(pool, client, breaker, SystemClock())
        result.update(await push_health_check(settings, pool))
        return result
    finally:
        await client.aclose()
        await pool.close()


def mentor_contacts(url: str) -> list[tuple[Any, bool]]:
    """Every mentor's contact id and whether it should be listed: what a sandbox must hold."""
    with connect.connect(url) as conn:
        rows = conn.execute(
            "SELECT dynamics_contact_id, status = 'active' FROM peer_mentors"
            " WHERE dynamics_contact_id IS NOT NULL"
        ).fetchall()
    return [(contact, bool(listed)) for contact, listed in rows]


async def push_health_check(settings: Settings, pool: Any) -> dict[str, Any]:
    """`hlfsync health`'s push part: FCM credentials and the operators' channel, one line each."""
    from hlfsync.core.clock import SystemClock
    from hlfsync.notify.factory import build_notifier
    from hlfsync.worker import push_health

    notifier = build_notifier(settings)
    try:
        push = await push_health.check_push_credentials(pool, notifier, SystemClock())
    finally:
        close = getattr(notifier, "aclose", None)
        if close is not None:
            await close()
    channel = push_health.check_operator_channel(settings)
    return {
        "push": {"status": push.status, "detail": push.detail},
        "operators": {"status": channel.status, "detail": channel.detail},
    }


def push_contacts_to_sandbox(settings: Settings, contacts: list[tuple[Any, bool]]) -> bool:
    """When HLFSYNC_DYNAMICS_URL is the sandbox, create the seeded contacts there.

    Returns False (and does nothing) when the URL is not a sandbox.
    """
    import httpx

    from hlfsync.dataverse.factory import tls_verify

    if not settings.dynamics_url or not contacts:
        return False
    body = [{"contactid": str(contact), "listed": listed} for contact, listed in contacts]
    with httpx.Client(verify=tls_verify(settings.dynamics_ca_bundle), timeout=60) as http:
        try:
            response = http.post(f"{settings.dynamics_url}/_sandbox/contacts", json=body)
        except httpx.HTTPError:
            return False
    return response.status_code < 300


def expiry_check(settings: Settings, *, day: date | None) -> dict[str, Any]:
    """`hlfsync expiry-check`: reminders and auto-pause for a day (default: today in HLF's zone)."""
    import getpass
    import socket
    from datetime import UTC

    from hlfsync.db import expiry

    url = database_url(settings)
    started = datetime.now(UTC)
    with connect.connect(url) as conn:
        stats = expiry.run_expiry_check(conn, day or today(settings), f"cli:{getpass.getuser()}")
        conn.execute(
            "INSERT INTO scheduled_runs (job, slot, status, started_at, finished_at, worker, stats)"
            " VALUES ('expiry_check', %s, 'succeeded', %s, now(), %s, %s)"
            " ON CONFLICT (job, slot) DO NOTHING",
            [started, started, f"cli@{socket.gethostname()}", Jsonb(stats)],
        )
        conn.commit()
    return stats


async def reconcile(settings: Settings, *, dry_run: bool) -> dict[str, Any]:
    """`hlfsync reconcile`: compare Dynamics with the app and re-queue what diverges."""
    import socket
    from datetime import UTC

    from hlfsync.dataverse.factory import build_client
    from hlfsync.db import reconcile as reconcile_mod
    from hlfsync.db.pool import open_pool

    client = build_client(settings)
    pool = await open_pool(database_url(settings), max_size=2)
    started = datetime.now(UTC)
    try:
        report = await reconcile_mod.reconcile(
            pool, client, now=started, dry_run=dry_run, page_size=settings.dynamics_page_size,
            actor="reconcile",
        )  # fmt: skip
        stats = report.stats()
        if not dry_run:
            await reconcile_mod.record_manual_run(
                pool, job="reconcile", started=started, finished=datetime.now(UTC),
                stats={k: v for k, v in stats.items() if "sample" not in k}, error=None,
                worker=f"cli@{socket.gethostname()}",
            )  # fmt: skip
        return stats
    finally:
        await client.aclose()
        await pool.close()


async def break_glass(
    settings: Settings, *, on_total: Any, on_progress: Any, on_checked: Any
) -> dict[str, Any]:
    """Check the credentials given on the spot, then push every divergent mentor's state."""
    from hlfsync.core.clock import SystemClock
    from hlfsync.dataverse.factory import build_client
    from hlfsync.db.pool import open_pool
    from hlfsync.worker import breakglass

    client = build_client(settings)
    pool = await open_pool(database_url(settings), max_size=20)
    try:
        identity = await client.who_am_i()  # raises AuthFailure for bad credentials
        on_checked(identity.user_id)
        summary = await breakglass.run(
            pool, client, SystemClock(), retry_policy(settings),
            page_size=settings.dynamics_page_size, on_total=on_total, on_progress=on_progress,
            alternate_key_column=settings.dynamics_alternate_key_column,
        )  # fmt: skip
        return breakglass.describe(summary)
    finally:
        await client.aclose()
        await pool.close()


def _announce_api(where: str) -> None:
    print(f"hlfsync api listening on {where}", flush=True)


async def api_forever(settings: Settings, *, host: str | None, port: int | None) -> None:
    """`hlfsync api`: the HTTP API and dashboard until SIGTERM/SIGINT."""
    import asyncio

    from hlfsync.api import serve
    from hlfsync.worker import process

    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    url = database_url(settings)
    pointed = settings.model_copy(update={"database_url": url})
    await serve(pointed, stop, host=host, port=port, on_ready=_announce_api)


async def run_forever(settings: Settings) -> None:
    """`hlfsync run`: worker, scheduler and API in one process, until SIGTERM/SIGINT."""
    import asyncio

    from hlfsync.api import serve
    from hlfsync.worker import process

    built = await build_worker(settings)
    stop = asyncio.Event()
    process.install_signal_handlers(stop)
    try:
        schedule, probe = await _beside_the_loop(settings, built, stop)
        api = asyncio.create_task(
            serve(settings.model_copy(update={"database_url": built.url}), stop,
                  pool=built.pool, on_ready=_announce_api),
            name="api",
        )  # fmt: skip
        await process.serve(built.worker, built.dispatcher, stop, extra=[schedule, probe, api])
    finally:
        await built.aclose()


def mint(settings: Settings, *, user: str, ttl_s: float) -> str:
    """`hlfsync token`: an API token for a user (development and tests)."""
    from hlfsync.api import mint_token
    from hlfsync.core.errors import ConfigError

    if settings.jwt_secret is None:
        raise ConfigError("missing setting HLFSYNC_JWT_SECRET: needed to sign API tokens")
    return mint_token(settings.jwt_secret.get_secret_value(), user, ttl_s, settings.jwt_audience)
