"""One bulk lane across the worker processes.

Every worker runs a live lane; the bulk lane runs in one of them at a time, the one holding a
session advisory lock in PostgreSQL. Bulk work (the nightly expiry's pauses, reconciliation's
corrections) then takes one worker's share of Dynamics whatever the number of workers: a second
worker added for live capacity does not double the night's load on Dataverse's service
protection limits, which count every request and every second of server time of the
application user across all its callers. When the holder stops or dies its connection closes,
the lock goes with it, and another worker takes the lane within `retry_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import psycopg
import structlog

from hlfsync.db.queries import q

log = structlog.get_logger(__name__)

Body = Callable[[asyncio.Event], Awaitable[None]]

# pg_try_advisory_lock's key: "hlfsync bulk lane", as a bigint of our own choosing.
BULK_LANE_KEY = 0x686C_6673_626C_6B31
RETRY_S = 5.0


async def run_when_holding(
    url: str,
    body: Body,
    stop: asyncio.Event,
    *,
    key: int = BULK_LANE_KEY,
    retry_s: float = RETRY_S,
) -> None:
    """Run `body` until `stop` once this process holds the lane's lock; until then, ask again
    every `retry_s`. A database that is away is waited out the same way."""
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                while not stop.is_set():
                    row = await (await conn.execute(q("bulk_lane_take"), {"key": key})).fetchone()
                    if row and row[0]:
                        log.info("bulk_lane_taken")
                        await body(stop)
                        return
                    await _wait(stop, retry_s)
        except psycopg.Error as exc:
            log.warning("bulk_lane_unavailable", error=str(exc).splitlines()[0])
            await _wait(stop, retry_s)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
