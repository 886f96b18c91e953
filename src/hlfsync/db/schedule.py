"""scheduled_runs: claim a job's slot (one winner across all workers), then record how it ended.

The UNIQUE (job, slot) key is the whole protocol: the INSERT that creates the row is the claim,
and a worker that gets no row back simply does not run the job.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from hlfsync.db.pool import Pool
from hlfsync.db.queries import q


async def last_slots(pool: Pool) -> dict[str, datetime]:
    """The latest slot recorded for each job (whatever its outcome)."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(q("schedule_last_slots"))).fetchall()
    return {str(job): slot for job, slot in rows}


async def claim(pool: Pool, *, job: str, slot: datetime, worker: str, now: datetime) -> int | None:
    """The new run's id when this worker won the slot; None when another one has it."""
    params = {"job": job, "slot": slot, "worker": worker, "now": now}
    async with pool.connection() as conn:
        row = await (await conn.execute(q("schedule_claim"), params)).fetchone()
    return int(row[0]) if row else None


async def finish(
    pool: Pool,
    run_id: int,
    *,
    status: str,
    now: datetime,
    stats: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Record the outcome (`succeeded` or `failed`); False if the run was already finished."""
    params = {
        "id": run_id,
        "status": status,
        "now": now,
        # Whatever a job returns is stored: values JSON cannot hold are stored as text.
        "stats": Jsonb(stats or {}, dumps=lambda obj: json.dumps(obj, default=str)),
        "error": error,
    }
    async with pool.connection() as conn:
        cur = await conn.execute(q("schedule_finish"), params)
    return cur.rowcount == 1
