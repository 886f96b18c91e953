"""The worker process's background loop: a thread with an event loop of its own for the work no
person is waiting for (the scheduler's jobs, the bulk lane of the sync queue, alert delivery).

The live lane keeps the main loop to itself: a night's 49,000 bulk `remove`s, 115,000 pushes and
a reconciliation's pages then never hold a coordinator's change behind one of their callbacks.
The thread shares the interpreter lock, so the process asks for a short switch interval
(`SWITCH_INTERVAL_S`): the main loop gets the lock back within half a millisecond of wanting it,
instead of Python's default 5 ms at every step. On a machine whose cores are all busy (a night's
catch-up on a small server), the lock is not the wait that counts: the live loop's thread waits
for a core, about 0.6 ms each time it wakes, and a change wakes it dozens of times. So on Linux,
where the scheduling priority (nice) belongs to each thread, the background thread runs `nice`
steps below the live loop (`HLFSYNC_WORKER_BULK_NICE`), and the threads it starts inherit that.
What the background builds (pool, HTTP clients, breaker view) is made on its thread and belongs
to its loop.

A background loop that fails is not carried on without: nothing would deliver alerts or drain
bulk work. The failure is logged and the whole worker stops with an error, for its supervisor to
restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from hlfsync.worker.scheduler import one_line

log = structlog.get_logger(__name__)

SWITCH_INTERVAL_S = 0.0005

# What runs on the background loop until the event it is given is set, and how to release what
# it holds; made by a build on the background thread.
Body = Callable[[asyncio.Event], Awaitable[None]]
Close = Callable[[], Awaitable[None]]
Build = Callable[[], Awaitable[tuple[Body, Close]]]


class BackgroundFailed(Exception):  # noqa: N818 - says what happened, as the log event does
    """The background loop failed and the worker stopped; the message is one line."""


@dataclass
class Outcome:
    """How the background loop ended: `error` is a one-line reason when it failed."""

    error: str | None = None


def lower_this_threads_priority(steps: int) -> None:
    """Make the calling thread `steps` nice values less urgent than it is (up to 19, the least).

    Only Linux gives each thread its own nice value; elsewhere the call would reach the whole
    process (or another process whose id is this thread's number), so nothing is done.
    """
    if sys.platform != "linux" or steps <= 0:
        return
    me = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + steps))
    except OSError as exc:  # a sandbox that forbids it: the bulk work runs as urgent as live
        log.warning("bulk_priority_unchanged", error=one_line(exc))


async def run_beside(build: Build, stop: asyncio.Event, outcome: Outcome, *, nice: int = 0) -> None:
    """Run what `build` makes on a thread and loop of its own until `stop` is set, `nice` steps
    below the calling thread's scheduling priority where the OS allows one thread its own.

    If it fails (its build or its body raises, or its body returns before `stop`), the failure
    is logged, written to `outcome` and `stop` is set: the whole worker stops.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    main_loop = asyncio.get_running_loop()
    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = (
        concurrent.futures.Future()
    )

    def failed(reason: str) -> None:
        if outcome.error is None and not stop.is_set():
            outcome.error = reason
            log.error("background_loop_failed", error=reason)
        stop.set()

    async def body() -> None:
        inner_stop = asyncio.Event()
        ready.set_result((asyncio.get_running_loop(), inner_stop))
        run, close = await build()
        try:
            await run(inner_stop)
        finally:
            await close()
        if not inner_stop.is_set():
            raise RuntimeError("the background loop ended before it was stopped")

    def main() -> None:
        lower_this_threads_priority(nice)
        try:
            asyncio.run(body())
        except Exception as exc:  # noqa: BLE001 - reported to the main loop, which stops
            reason = one_line(exc)
            with contextlib.suppress(RuntimeError):  # the main loop may be closing
                main_loop.call_soon_threadsafe(failed, reason)
            if not ready.done():
                ready.set_exception(exc)

    thread = threading.Thread(target=main, name="hlfsync-background", daemon=True)
    thread.start()
    try:
        loop, inner_stop = await asyncio.wrap_future(ready)
    except Exception:  # noqa: BLE001 - reported by the thread
        await asyncio.to_thread(thread.join)
        return
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(RuntimeError):  # its loop may have ended on its own
            loop.call_soon_threadsafe(inner_stop.set)
        await asyncio.to_thread(thread.join)
