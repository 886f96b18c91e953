"""The parts every build starts from: the database (migrated), "today", the retry policy and
breaker settings, and the pool and clients a command holds for one run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from hlfsync.db import connect, migrate
from hlfsync.settings import Settings

if TYPE_CHECKING:
    from hlfsync.core.breaker import BreakerConfig
    from hlfsync.core.retry import RetryPolicy
    from hlfsync.db.pool import Pool
    from hlfsync.dynamics.port import DynamicsClient
    from hlfsync.notify.base import Notifier


def database_url(settings: Settings, *, upgrade: bool = True) -> str:
    """The database URL, with the schema brought up to date unless told otherwise."""
    url = connect.database_url(settings)
    if upgrade:
        with connect.connect(url) as conn:
            migrate.upgrade(conn)
    return url


def today(settings: Settings) -> date:
    """What "today" is in HLF's time zone (the scheduler's rule: `core.expiry.local_date`)."""
    from hlfsync.core import expiry

    return expiry.local_date(datetime.now(UTC), settings.zone)


def retry_policy(settings: Settings) -> RetryPolicy:
    from hlfsync.core import retry

    return retry.RetryPolicy.from_settings(
        settings.retry_max_retries,
        settings.retry_base_delay,
        settings.retry_multiplier,
        settings.retry_max_delay,
        settings.retry_jitter,
    )


def breaker_config(settings: Settings) -> BreakerConfig:
    from hlfsync.core.breaker import BreakerConfig

    return BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold,
        cooldown=timedelta(seconds=settings.breaker_cooldown),
        probe_lease=timedelta(seconds=max(settings.dynamics_timeout * 2, 10.0)),
    )


# --- what a command holds for its run, closed when it ends ---------------------------------------


@asynccontextmanager
async def pool(settings: Settings, *, max_size: int) -> AsyncIterator[Pool]:
    """The async pool the worker and scheduler use, for the length of one command."""
    from hlfsync.db.pool import open_pool

    pool = await open_pool(database_url(settings), max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def dynamics(settings: Settings) -> AsyncIterator[DynamicsClient]:
    from hlfsync.dynamics.factory import build_client

    client = build_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def notifier(settings: Settings) -> AsyncIterator[Notifier]:
    from hlfsync.notify.factory import build_notifier

    built = build_notifier(settings)
    try:
        yield built
    finally:
        await close_notifier(built)


async def close_notifier(notifier: Notifier) -> None:
    # Not every notifier holds a connection (the log notifier does not).
    close: Callable[[], Awaitable[None]] | None = getattr(notifier, "aclose", None)
    if close is not None:
        await close()
