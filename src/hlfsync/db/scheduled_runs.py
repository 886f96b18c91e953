"""scheduled_runs: claim a job's slot (one winner across all workers), then record how it ended.

The UNIQUE (job, slot) key is the protocol: the INSERT that creates the row is the claim, and a
worker that gets no row back does not run the job. A running run sends heartbeats; one whose
heartbeats stopped (its worker was killed) is marked abandoned and its slot claimed again.
A run started by hand is recorded here too (`record_manual_run`): every write to the table is
in this module.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from hlfsync.db.pool import Pool
from hlfsync.db.queries import q


def _stats(stats: dict[str, Any] | None) -> Jsonb:
    # Whatever a job returns is stored: values JSON cannot hold are stored as text.
    return Jsonb(stats or {}, dumps=lambda obj: json.dumps(obj, default=str))


async def last_slots(pool: Pool) -> dict[str, datetime]:
    """The latest slot recorded for each job (whatever its outcome, unless abandoned)."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(q("schedule_last_slots"))).fetchall()
    return {str(job): slot for job, slot in rows}


async def abandon_stale(
    pool: Pool, *, now: datetime, stale_before: datetime
) -> list[tuple[str, datetime, str | None]]:
    """Close the runs with no heartbeat since `stale_before`; (job, slot, worker) of each."""
    params = {"now": now, "stale_before": stale_before}
    async with pool.connection() as conn:
        rows = await (await conn.execute(q("schedule_abandon"), params)).fetchall()
    return [(str(job), slot, worker) for job, slot, worker in rows]


async def claim(
    pool: Pool, *, job: str, slot: datetime, worker: str, now: datetime
) -> tuple[int, int] | None:
    """(run id, attempt) when this worker won the slot; None when another one has it."""
    params = {"job": job, "slot": slot, "worker": worker, "now": now}
    async with pool.connection() as conn:
        row = await (await conn.execute(q("schedule_claim"), params)).fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def heartbeat(pool: Pool, run_id: int, *, worker: str, now: datetime) -> bool:
    """Prove the run is alive; False when it is no longer this worker's (taken over)."""
    params = {"id": run_id, "worker": worker, "now": now}
    async with pool.connection() as conn:
        cur = await conn.execute(q("schedule_heartbeat"), params)
    return cur.rowcount == 1


async def finish(
    pool: Pool,
    run_id: int,
    *,
    worker: str,
    status: str,
    now: datetime,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome (`succeeded` or `failed`); False if the run was already finished or
    is no longer this worker's."""
    params = {
        "id": run_id,
        "worker": worker,
        "status": status,
        "now": now,
        "stats": _stats(stats),
        "error": error,
    }
    async with pool.connection() as conn:
        cur = await conn.execute(q("schedule_finish"), params)
    return cur.rowcount == 1


async def record_manual_run(
    pool: Pool,
    *,
    job: str,
    started: datetime,
    finished: datetime,
    worker: str,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """Record a run started by hand beside the scheduled ones (its own slot: its start)."""
    params = {
        "job": job,
        "slot": started,
        "status": "failed" if error else "succeeded",
        "started": started,
        "finished": finished,
        "worker": worker,
        "stats": _stats(stats),
        "error": error,
    }
    async with pool.connection() as conn:
        await conn.execute(q("schedule_record_manual"), params)
