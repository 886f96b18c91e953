"""The scheduler: at each cron slot, claim the slot in scheduled_runs and run the job there once.

`run_once()` runs what is due now, including the latest slot missed while no worker ran;
`run()` repeats it until stopped, sleeping until the next slot of any job (at most 60 s). Any
number of workers may run a scheduler: the slot's unique key lets one of them run each slot. A
job that raises is recorded as failed and never stops the loop. A running job sends heartbeats;
when a worker dies mid-run, the next scheduler to look marks the run abandoned after
`stale_after_s` and runs the slot again if it is still the one due.

In a worker process the scheduler runs on the background loop (`worker.background`), with its
own connections and HTTP client: its jobs (a reconciliation parsing pages, a health check, the
expiry check's statements) then never hold the live sync's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

import psycopg
import structlog

from hlfsync.core import cron
from hlfsync.core.clock import Clock
from hlfsync.db import scheduled_runs as runs
from hlfsync.db.pool import Pool

log = structlog.get_logger(__name__)

ERROR_MAX_CHARS = 500
HEARTBEAT_S = 15.0
# Several missed heartbeats, so a busy database or a long GC pause is not taken for a death.
STALE_AFTER_S = 90.0


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    """A cron expression (in the scheduler's zone) and the job, called with the run's start.

    The job gets the instant the run starts, not the slot, so a slot caught up after downtime
    works on the real today. It returns stats (JSON-ready) for scheduled_runs.
    """

    cron: str
    run: Callable[[datetime], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run this scheduler made: which slot, how it ended."""

    job: str
    slot: datetime
    run_id: int
    status: str
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempt: int = 1


def one_line(exc: BaseException) -> str:
    """The exception as one short line for scheduled_runs.error and the log."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line[:ERROR_MAX_CHARS]


class Scheduler:
    """Runs `jobs` at their slots, once per slot across every worker on the database."""

    def __init__(
        self,
        pool: Pool,
        clock: Clock,
        zone: tzinfo,
        jobs: Mapping[str, ScheduledTask],
        *,
        worker_id: str | None = None,
        max_sleep_s: float = 60.0,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError("need 0 < heartbeat_s < stale_after_s")
        for name, job in jobs.items():
            try:
                cron.validate(job.cron)
            except ValueError as exc:
                raise ValueError(f"scheduled job {name}: {exc}") from exc
        self.pool = pool
        self.clock = clock
        self.zone = zone
        self.jobs = dict(jobs)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.max_sleep_s = max_sleep_s
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s

    async def run_once(self) -> list[RunRecord]:
        """Run every job whose due slot nobody has recorded yet; returns the runs made here."""
        now = self.clock.now()
        stale_before = now - timedelta(seconds=self.stale_after_s)
        for gone_job, gone_slot, gone_worker in await runs.abandon_stale(
            self.pool, now=now, stale_before=stale_before
        ):
            log.warning("scheduled_run_abandoned", job=gone_job, slot=gone_slot.isoformat(),
                        worker=gone_worker)  # fmt: skip
        last = await runs.last_slots(self.pool)
        due: dict[str, datetime] = {}
        for name, job in self.jobs.items():
            slot = cron.slot_to_run(job.cron, self.zone, now, last.get(name))
            if slot is not None:
                due[name] = slot
        if not due:
            return []
        made = await asyncio.gather(*(self._claim_and_run(n, s, now) for n, s in due.items()))
        return [record for record in made if record is not None]

    async def _claim_and_run(self, name: str, slot: datetime, now: datetime) -> RunRecord | None:
        claimed = await runs.claim(self.pool, job=name, slot=slot, worker=self.worker_id, now=now)
        if claimed is None:
            log.debug("scheduled_slot_taken", job=name, slot=slot.isoformat())
            return None
        run_id, attempt = claimed
        started = time.perf_counter()
        beating = asyncio.create_task(self._heartbeat(run_id), name=f"heartbeat-{name}")
        try:
            stats = await self.jobs[name].run(now)
        except asyncio.CancelledError:
            # Best effort: the stop must not turn into a database error.
            with contextlib.suppress(psycopg.Error):
                await self._finish(
                    run_id, "failed", error="cancelled: the worker stopped during the run"
                )
            raise
        except Exception as exc:  # noqa: BLE001 - a failing job is recorded, never kills the loop
            error = one_line(exc)
            await self._finish(run_id, "failed", error=error)
            self._log(name, slot, "failed", started, attempt=attempt, error=error)
            return RunRecord(name, slot, run_id, "failed", error=error, attempt=attempt)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        stats = dict(stats or {})
        await self._finish(run_id, "succeeded", stats=stats)
        self._log(name, slot, "succeeded", started, attempt=attempt, stats=stats)
        return RunRecord(name, slot, run_id, "succeeded", stats, attempt=attempt)

    async def _finish(self, run_id: int, status: str, **outcome: Any) -> None:
        recorded = await runs.finish(self.pool, run_id, worker=self.worker_id, status=status,
                                     now=self.clock.now(), **outcome)  # fmt: skip
        if not recorded:
            # Our heartbeats were missed long enough for another worker to take the slot over.
            log.warning("scheduled_run_taken_over", run_id=run_id, outcome=status)

    async def _heartbeat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                alive = await runs.heartbeat(self.pool, run_id, worker=self.worker_id,
                                             now=self.clock.now())  # fmt: skip
            except psycopg.Error as exc:
                log.warning("scheduled_heartbeat_failed", run_id=run_id, error=one_line(exc))
                continue
            if not alive:
                return

    def _log(self, name: str, slot: datetime, outcome: str, started: float, **extra: Any) -> None:
        # One canonical line per run.
        level = log.error if outcome == "failed" else log.info
        level(
            "scheduled_run",
            job=name,
            slot=slot.isoformat(),
            outcome=outcome,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            worker=self.worker_id,
            **extra,
        )

    def seconds_until_next(self) -> float:
        """How long to sleep: until the next slot of any job, capped at `max_sleep_s`."""
        crons = [job.cron for job in self.jobs.values()]
        return cron.wait_seconds(crons, self.zone, self.clock.now(), self.max_sleep_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Run due jobs until `stop` is set; a database outage is logged and waited out."""
        backoff = 1.0
        log.info("scheduler_started", jobs=sorted(self.jobs), worker=self.worker_id)
        while not stop.is_set():
            try:
                await self.run_once()
                wait = self.seconds_until_next()
                backoff = 1.0
            except psycopg.Error as exc:
                log.error("scheduler_database_unavailable", error=one_line(exc))
                wait, backoff = backoff, min(backoff * 2, self.max_sleep_s)
            # Never a busy loop when a slot is a hair away.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.01))
        log.info("scheduler_stopped", worker=self.worker_id)
