"""The sync worker loop: wake on NOTIFY (or the poll interval), claim, run, record; repeat.

`run_once()` drains what is due and returns (the stateless mode for an external scheduler and
for tests); `run()` loops until told to stop, then lets in-flight calls finish. The loop holds
only timing and cancellation: every decision is in `handlers` and the core.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import psycopg
import structlog

from hlfsync.core import outcome, pacing
from hlfsync.core.breaker import Admission
from hlfsync.db.queue import BULK, EVERY, LIVE_PRIORITY, Lane, Operation
from hlfsync.worker import handlers
from hlfsync.worker.handlers import SyncContext
from hlfsync.worker.lag import LagProbe

log = structlog.get_logger(__name__)

CHANNELS = ("hlfsync_sync_queue", "hlfsync_breaker", "hlfsync_alerts")
RESCUE_EVERY = timedelta(seconds=5)
# Most operations one worker holds leased at once when it sends `$batch`es.
MAX_HELD = 2000
# Most operations one claim takes: the rows of a claim are read and turned into operations in
# one step of the loop (2,000 at once held it for tens of milliseconds); the buffer is refilled
# slice by slice, yielding in between.
CLAIM_SLICE = 250
# How long a throttle makes the worker fill batches: Dataverse counts requests over 5 minutes.
THROTTLE_MEMORY = pacing.WINDOW
# A worker's bulk calls: at most a quarter of its slots.
BULK_SHARE = 4


class SyncWorker:
    """Claims due operations of its lane and runs up to `concurrency` of them at once.

    A worker process runs two: the live lane on its main loop and the bulk lane on its
    background loop (`services.worker`); `worker --once` and tests run one for every lane.
    """

    def __init__(
        self,
        ctx: SyncContext,
        *,
        url: str,
        concurrency: int,
        lease_s: float,
        poll_interval_s: float,
        enabled: bool = True,
        lane: Lane = EVERY,
    ) -> None:
        self.ctx = ctx
        self.lane = lane
        self.url = url
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.enabled = enabled
        self.wake = asyncio.Event()
        self.alerts_wake = asyncio.Event()
        self.handled = 0
        self._inflight: set[asyncio.Task[list[outcome.Outcome]]] = set()
        self._inflight_jobs = 0
        # Claimed ops waiting for a free slot: a finished call starts the next one at once,
        # without a round trip to the database in between.
        self._buffer: collections.deque[Operation] = collections.deque()
        self._buffered_bulk = 0  # bulk ops (below LIVE_PRIORITY) among them
        # The live loop's lag probe, when the process runs one (`worker.lag`): bulk work yields
        # to it, on whichever loop it runs.
        self.lag: LagProbe | None = None
        self._bulk_tasks = 0
        # Bulk calls in flight at most: a quarter of the slots. A backlog is bound by CPU (here
        # and at Dynamics), not by calls in flight, and a live call must not queue at Dynamics
        # behind dozens of bulk `$batch`es. A bulk lane's concurrency is that share already.
        # Bulk work yields to live work: while the live loop is late, fewer bulk calls run at
        # once (`pacing.LagShare`), so a person's change finds the loop free within a few
        # milliseconds even while a night's backlog drains. The bulk lane runs on the
        # background thread and reads the live loop's probe (`services.worker`).
        self._bulk_share = pacing.LagShare(
            concurrency if lane is BULK else max(1, concurrency // BULK_SHARE)
        )
        # Changes per call: 1 sends each alone (lowest latency); more lets a backlog go out in
        # `$batch`es, so a rate-limited Dynamics takes many changes per request. A lone change
        # is always sent alone.
        self.batch = max(1, ctx.client.max_batch)
        self.requests = pacing.RequestWindow()
        # Tasks, not calls: `ctx.slots` lets `concurrency` of them call Dynamics at once while
        # as many more wait for a slot or write their outcome.
        self.max_tasks = 2 * concurrency
        self.capacity = (
            3 * concurrency
            if self.batch == 1
            else min(3 * concurrency * self.batch, max(MAX_HELD, 3 * concurrency))
        )
        self._last_rescue: datetime | None = None
        # Set by NOTIFY: something was queued, perhaps a person's change that must not wait
        # behind the bulk work already claimed into the buffer.
        self._live_hint = False

    def _claim_limit(self, now: datetime, *, capacity: int) -> int:
        held = self._inflight_jobs + len(self._buffer)
        free = capacity - held
        if not self.enabled or free <= 0:
            return 0
        quick = self.ctx.breaker.local_admission(now)
        if quick is Admission.ALLOW:
            return free
        if quick is None and held == 0:
            return 1  # the circuit may let one probe through: claim exactly one
        return 0

    def _take(self, waiting: int, free: int) -> int:
        """How many of `waiting` ops the next call carries.

        Normally they are shared out over the `free` slots: calls in parallel, each batch
        small, the lowest latency. After a throttle, or once this loop's share of the window's
        requests is spent, requests are what Dynamics rations, so batches are filled before
        another request is spent.
        """
        if self.batch == 1 or waiting <= 1:
            return 1
        if self._throttled_recently() or self.requests.spent(self.ctx.clock.now()):
            return min(self.batch, waiting)
        return max(1, min(self.batch, math.ceil(waiting / max(1, free))))

    def _throttled_recently(self) -> bool:
        paused = self.ctx.breaker.view.paused_until
        return paused is not None and self.ctx.clock.now() - paused < THROTTLE_MEMORY

    def _fill_slots(self) -> None:
        while self._buffer and len(self._inflight) < self.max_tasks:
            if not self._buffer[0].live and not self._bulk_may_start():
                return
            take = self._take(len(self._buffer), self.concurrency - len(self._inflight))
            ops = [self._buffer.popleft() for _ in range(take)]
            bulk = sum(not op.live for op in ops)
            self._buffered_bulk -= bulk
            self._start(ops, bulk=bulk > 0)

    def _bulk_may_start(self) -> bool:
        """Whether another bulk call may start, given how busy the loop is (AIMD on its lag)."""
        if self.lag is None:
            return self._bulk_tasks < self._bulk_share.ceiling
        now = asyncio.get_running_loop().time()
        return self._bulk_tasks < self._bulk_share.allowed(now, self.lag.recent_s)

    async def _maybe_rescue(self, now: datetime) -> None:
        if self._last_rescue is not None and now - self._last_rescue < RESCUE_EVERY:
            return
        self._last_rescue = now
        rescued, superseded = await self.ctx.store.rescue(now=now)
        if rescued or superseded:
            log.warning("leases_rescued", rescued=rescued, superseded=superseded)

    async def run_once(self) -> int:
        """Drain what is due now and return how many operations were handled."""
        now = self.ctx.clock.now()
        self._last_rescue = None
        await self._maybe_rescue(now)
        await self.ctx.breaker.refresh()
        handled = 0
        while True:
            now = self.ctx.clock.now()
            # One round: a call's worth for each slot.
            limit = self._claim_limit(now, capacity=self.concurrency * self.batch)
            if limit == 0:
                break
            ops = await self.ctx.store.claim(
                limit=limit, now=now, lease_s=self.lease_s, lane=self.lane
            )
            if not ops:
                break
            await asyncio.gather(*(handlers.handle_many(chunk, self.ctx)
                                   for chunk in self._chunks(ops)))  # fmt: skip
            handled += len(ops)
        self.handled += handled
        return handled

    def _chunks(self, ops: Sequence[Operation]) -> list[Sequence[Operation]]:
        """`ops` cut into calls as `_take` would, all slots free."""
        size = self._take(len(ops), self.concurrency)
        chunks = [ops[i : i + size] for i in range(0, len(ops), size)]
        self.requests.note(self.ctx.clock.now(), len(chunks))
        return chunks

    def _start(self, ops: list[Operation], *, urgent: bool = False, bulk: bool = False) -> None:
        self.requests.note(self.ctx.clock.now())
        context = contextvars.copy_context()
        if urgent:
            # Its call takes the next free slot, ahead of bulk calls waiting for one.
            context.run(handlers.URGENT.set, True)
        task = asyncio.create_task(
            handlers.handle_many(ops, self.ctx), name=f"sync-{ops[0].id}", context=context
        )
        self._inflight.add(task)
        self._inflight_jobs += len(ops)
        self._bulk_tasks += bulk

        def done(finished: asyncio.Task[list[outcome.Outcome]]) -> None:
            self._inflight.discard(finished)
            self._inflight_jobs -= len(ops)
            self._bulk_tasks -= bulk
            self.handled += len(ops)
            self.wake.set()
            if not finished.cancelled() and finished.exception() is not None:
                log.error("handler_crashed", error=repr(finished.exception()))

        task.add_done_callback(done)

    async def _sleep_for(self, now: datetime) -> float:
        wait = self.poll_interval_s
        due = await self.ctx.store.next_due(self.lane)
        if due is not None:
            wait = min(wait, max(0.0, (due - now).total_seconds()))
        blocked = self.ctx.breaker.wait_until(now)
        if blocked is not None:
            wait = max(wait, min(self.poll_interval_s, (blocked - now).total_seconds()))
        return max(wait, 0.001)

    def _admit(self, ops: list[Operation]) -> None:
        """Buffer claimed ops; a person's changes claimed beside bulk work, or while bulk work
        waits in the buffer, start at once instead, ahead of it (their calls urgent)."""
        live = [op for op in ops if op.live]
        bulk = [op for op in ops if not op.live]
        if live and (bulk or self._buffered_bulk):
            size = self._take(len(live), self.concurrency)
            for i in range(0, len(live), size):
                self._start(live[i : i + size], urgent=True)
        else:
            self._buffer.extend(live)
        self._buffer.extend(bulk)
        self._buffered_bulk += len(bulk)

    async def _claim_live(self, now: datetime) -> None:
        """Claim a person's changes past the bulk work waiting in the buffer."""
        held = self._inflight_jobs + len(self._buffer)
        limit = self._claim_limit(now, capacity=held + self.concurrency)
        if limit == 0:
            return
        ops = await self.ctx.store.claim(
            limit=limit, now=now, lease_s=self.lease_s, lane=self.lane, min_priority=LIVE_PRIORITY
        )
        self._admit(ops)

    async def _tick(self) -> bool:
        """One pass: rescue, claim and start work; True when it should loop again at once."""
        now = self.ctx.clock.now()
        await self._maybe_rescue(now)
        hinted, self._live_hint = self._live_hint, False
        if hinted and self._buffered_bulk:
            await self._claim_live(now)
        self._fill_slots()
        # Refill when the buffer runs low, in batches: one claim feeds many calls.
        if len(self._buffer) > self.capacity // 4:
            return False
        limit = min(self._claim_limit(now, capacity=self.capacity), CLAIM_SLICE)
        if limit == 0:
            return False
        ops = await self.ctx.store.claim(limit=limit, now=now, lease_s=self.lease_s, lane=self.lane)
        self._admit(ops)
        self._fill_slots()
        return len(ops) == limit and bool(self._buffer)

    async def _release_buffer(self) -> None:
        now = self.ctx.clock.now()
        self._buffered_bulk = 0
        while self._buffer:
            op = self._buffer.popleft()
            given_back = outcome.Held(outcome.Hold.NOT_SENT, now, "worker stopped before sending")
            await self.ctx.store.record(op, given_back, now=now)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then finish the calls in flight and return."""
        listener = asyncio.create_task(self._listen(stop), name="listen")
        await self.ctx.breaker.refresh()
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    again = await self._tick()
                    backoff = 0.5
                    if again:
                        continue
                    busy = self._inflight or self._buffer
                    # While calls are in flight, their completion wakes us; no need to ask when
                    # the next operation is due.
                    timeout = (
                        self.poll_interval_s
                        if busy
                        else await self._sleep_for(self.ctx.clock.now())
                    )
                except psycopg.Error as exc:
                    log.error("database_unavailable", error=str(exc).splitlines()[0])
                    timeout, backoff = backoff, min(backoff * 2, 30.0)
                await _wait_any(self.wake, stop, timeout)
                self.wake.clear()
        finally:
            if self._inflight:
                log.info("finishing_in_flight", count=len(self._inflight))
                await asyncio.gather(*self._inflight, return_exceptions=True)
            with contextlib.suppress(psycopg.Error):
                await self._release_buffer()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for new operations, breaker changes and alerts until `stop`."""
        await listen(self.url, CHANNELS, self._heard, stop)

    async def _heard(self, channel: str | None) -> None:
        if channel == "hlfsync_breaker":
            await self.ctx.breaker.refresh()
        if channel == "hlfsync_alerts":
            self.alerts_wake.set()
            return
        # A new operation, perhaps a person's change (None: (re)connected, and anything
        # committed while we were away is due now).
        self._live_hint = True
        self.wake.set()


async def listen(
    url: str,
    channels: Sequence[str],
    heard: Callable[[str | None], Awaitable[None]],
    stop: asyncio.Event,
) -> None:
    """LISTEN on `channels` and await `heard(channel)` at each notification, `heard(None)` at
    each (re)connection, until `stop`; a database that restarts is waited out with backoff."""
    backoff = 0.5
    while not stop.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            async with conn:
                for channel in channels:
                    await conn.execute(f"LISTEN {channel}".encode())
                backoff = 0.5
                await heard(None)
                async for note in conn.notifies():
                    await heard(note.channel)
        except psycopg.Error as exc:
            log.warning("listen_reconnecting", error=str(exc).splitlines()[0])
            await _wait_any(stop, stop, backoff)
            backoff = min(backoff * 2, 10.0)


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, wait_s: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
