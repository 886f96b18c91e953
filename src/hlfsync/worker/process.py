"""A worker process's main loop: the sync loop (and the alert dispatcher when it runs here) and
what runs beside them, stopped by a signal."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import psycopg
import structlog

from hlfsync.worker.dispatcher import AlertDispatcher
from hlfsync.worker.runner import SyncWorker, _wait_any, listen

log = structlog.get_logger(__name__)


async def dispatch_forever(
    dispatcher: AlertDispatcher, wake: asyncio.Event, stop: asyncio.Event, poll_s: float
) -> None:
    """Deliver alerts when woken by NOTIFY, and at least every `poll_s` for retries."""
    while not stop.is_set():
        try:
            sent = await dispatcher.run_once()
        except psycopg.Error as exc:
            log.error("database_unavailable", error=str(exc).splitlines()[0])
            sent = 0
        if sent:
            continue
        await _wait_any(wake, stop, poll_s)
        wake.clear()


async def wake_on(url: str, channel: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set `wake` at each notification on `channel` (and at each reconnection: anything sent
    meanwhile is due) until `stop`."""

    async def heard(_: str | None) -> None:
        wake.set()

    await listen(url, [channel], heard, stop)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop: in-flight calls finish, nothing new starts."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def serve(worker: SyncWorker, dispatcher: AlertDispatcher | None, stop: asyncio.Event,
                extra: list[Any] | None = None) -> None:  # fmt: skip
    """Run the sync loop and the dispatcher (None: it runs elsewhere, on the background loop)
    and any extra loops until `stop`."""
    tasks = [asyncio.create_task(worker.run(stop), name="sync"), *(extra or [])]
    if dispatcher is not None:
        alerts = dispatch_forever(dispatcher, worker.alerts_wake, stop, worker.poll_interval_s)
        tasks.append(asyncio.create_task(alerts, name="alerts"))
    log.info("worker_started", concurrency=worker.concurrency, lane=worker.lane.name,
             sync_enabled=worker.enabled)  # fmt: skip
    await asyncio.gather(*tasks)
    log.info("worker_stopped", handled=worker.handled)
