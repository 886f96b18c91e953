"""Reconciliation: read what Dynamics lists, page by page, compare with the app, re-queue drift.

Pages are copied into a temporary table as they arrive, so memory stays flat with the number
of contacts; the comparison is one set-based query. A mentor already on its way (an operation
waiting, running, or just succeeded within the portal's read lag) is never re-queued, so
reconciliation cannot loop; one with an open dead letter waits for a person. What Dynamics
listed becomes each mentor's confirmed listing a chunk of contacts per transaction, so a person's
status change never waits for the whole run's row locks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import structlog
from psycopg import AsyncConnection

from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.dynamics.port import DynamicsClient

log = structlog.get_logger(__name__)

READ_LAG_S = 300.0  # an operation that succeeded this recently may not show in reads yet
SAMPLE = 20
# Confirmations per transaction. A person's status change updates its mentor's confirmation
# row, so it waits for the chunk holding that row: one statement over 100,000 rows held such a
# change 0.8-1.9 s (`bench.latency`, two workers, the app's write); a chunk takes milliseconds.
CONFIRM_CHUNK = 1_000


@dataclass
class ReconcileReport:
    """What one run found and did."""

    contacts_read: int = 0
    pages: int = 0
    diverging: int = 0
    queued: int = 0
    skipped_in_flight: int = 0
    unknown_listed_contacts: int = 0
    contacts_missing_in_dynamics: int = 0
    mentors_without_contact: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    divergent_sample: list[dict[str, Any]] = field(default_factory=list)
    unknown_sample: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The counts without the samples: what scheduled_runs keeps and the log line says."""
        return {k: v for k, v in self.stats().items() if "sample" not in k}


async def _copy_page(conn: AsyncConnection[Any], page: list[Any]) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy("COPY reconcile_seen (contact_id, listed) FROM STDIN") as copy,
    ):
        for item in page:
            await copy.write_row((item.contact_id, item.listed))


async def _confirm(conn: AsyncConnection[Any], *, now: datetime, lag_s: float, chunk: int) -> None:
    """Record what Dynamics listed as each mentor's confirmation, `chunk` contacts per commit
    (the connection is autocommit: each statement is its own transaction)."""
    cur = await conn.execute(q("reconcile_confirm_chunks"), {"size": chunk})
    for lo, hi in await cur.fetchall():
        await conn.execute(q("reconcile_confirm"), {"now": now, "lag_s": lag_s, "lo": lo, "hi": hi})


async def reconcile(
    pool: Pool,
    client: DynamicsClient,
    *,
    now: datetime,
    dry_run: bool,
    page_size: int,
    actor: str = "reconcile",
    source: str = "reconcile",
    priority: int = 0,
    read_lag_s: float = READ_LAG_S,
    confirm_chunk: int = CONFIRM_CHUNK,
) -> ReconcileReport:
    """Compare and (unless `dry_run`) queue a sync for every divergent mentor."""
    report = ReconcileReport(dry_run=dry_run)
    started = time.perf_counter()
    async with pool.connection() as conn:
        await conn.execute(q("reconcile_prepare"))
        await conn.execute(q("reconcile_prepare_drift"))
        await conn.execute(q("reconcile_index"))
        await conn.execute(q("reconcile_reset"))
        async for page in client.listings(page_size):
            async with conn.transaction():
                await _copy_page(conn, page)
            report.pages += 1
            # One page alive at a time: memory stays flat at any size. (It grew with the number
            # of pages while httpx's response sat in a reference cycle with the page's body,
            # 5.5 MiB at 10,000 contacts and 8.0 at 100,000, and the cure was a full garbage
            # collection per page, which held the worker's live loop; `outbound.transport.
            # unbound` now breaks the cycle, and nothing here waits for the collector.)
            del page
        await conn.execute(q("reconcile_analyze"))
        await conn.execute(q("reconcile_divergent"), {"now": now, "lag_s": read_lag_s})
        counts = await (await conn.execute(q("reconcile_counts"))).fetchone()
        sample = await (
            await conn.execute(q("reconcile_drift_sample"), {"limit": SAMPLE})
        ).fetchall()
        unknown = await (
            await conn.execute(q("reconcile_unknown_sample"), {"limit": SAMPLE})
        ).fetchall()
        report.divergent_sample = [
            {"mentor_id": str(m), "listed_in_dynamics": listed, "status": status}
            for m, listed, status in sample
        ]
        if not dry_run:
            # Before queueing: the confirmations are what Dynamics said, not what we asked.
            await _confirm(conn, now=now, lag_s=read_lag_s, chunk=confirm_chunk)
            params = {"source": source, "priority": priority, "actor": actor}
            queued = await (await conn.execute(q("reconcile_enqueue"), params)).fetchone()
            report.queued = int(queued[0]) if queued else 0
        await conn.execute(q("reconcile_reset"))
    to_queue = 0
    if counts is not None:
        (report.contacts_read, to_queue, report.diverging, report.unknown_listed_contacts,
         report.contacts_missing_in_dynamics, report.mentors_without_contact) = counts  # fmt: skip
    report.skipped_in_flight = report.diverging - to_queue
    report.unknown_sample = [str(row[0]) for row in unknown]
    report.seconds = round(time.perf_counter() - started, 3)
    log.info("reconciled", **report.summary())
    return report
