"""The expiry check, renewals and the compensation check against PostgreSQL.

The decisions are the set-based SQL of `0006_expiry.sql` (their one home); this
module runs them, turns rows into stats, validates renewal entries and applies the size guard.
The check and the compensation run on the async pool, for the scheduler and the CLI alike
(through `hlfsync.tasks`); renewals and the duplicate listing are single-connection inspections.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog

from hlfsync import metrics
from hlfsync.core import expiry, renewals
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q

log = structlog.get_logger(__name__)

# Mentors per chunk of the nightly check: each chunk is one short transaction, so a first-ever
# catch-up (tens of thousands of pauses) never holds many row locks for long.
CHUNK_MENTORS = 10_000
# Chunks in flight at once in the scheduler's run: two keep two cores of PostgreSQL busy.
LANES = 2

Conn = psycopg.Connection[Any]


# --- the nightly check ------------------------------------------------------------------------


def _check_params(today: date, actor: str, now: datetime | None) -> dict[str, Any]:
    if not actor:
        raise ValueError("the expiry check needs an actor for its audit rows")
    return {"today": today, "actor": actor, "now": now}


def _check_stats(
    today: date,
    reminder_rows: Sequence[Sequence[Any]],
    pause_row: Sequence[Any] | None,
    oversized_row: Sequence[Any] | None,
) -> dict[str, Any]:
    paused, pause_alerts, pause_deliveries = pause_row or (0, 0, 0)
    oversized, sample = oversized_row or (0, None)
    stats = expiry.CheckStats(
        today=today,
        reminders={int(t): int(n) for t, n, _, _ in reminder_rows},
        reminder_alerts=sum(int(a) for _, _, a, _ in reminder_rows),
        paused=int(paused),
        pause_alerts=int(pause_alerts),
        deliveries=sum(int(d) for *_, d in reminder_rows) + int(pause_deliveries),
        oversized_histories=int(oversized),
    )
    size_guard(int(oversized), source="expiry_check", sample=sample)
    result = stats.as_dict()
    log.info("expiry_check", **result)
    return result


def _ranges(bounds: Sequence[Sequence[Any]]) -> list[tuple[UUID | None, UUID | None]]:
    """(lo, hi] mentor-id ranges from the chunk bounds; the first and last are open-ended."""
    edges: list[UUID | None] = [None, *(row[0] for row in bounds), None]
    return list(itertools.pairwise(edges))


def _sum_pauses(rows: Sequence[Sequence[Any] | None]) -> tuple[int, int, int]:
    return (
        sum(int(r[0]) for r in rows if r),
        sum(int(r[1]) for r in rows if r),
        sum(int(r[2]) for r in rows if r),
    )


def _sum_reminders(rows: Sequence[Sequence[Any]]) -> list[tuple[int, int, int, int]]:
    per: dict[int, list[int]] = {}
    for threshold, n, alerts, deliveries in rows:
        acc = per.setdefault(int(threshold), [0, 0, 0])
        acc[0] += int(n)
        acc[1] += int(alerts)
        acc[2] += int(deliveries)
    return [(t, *acc) for t, acc in sorted(per.items(), reverse=True)]  # type: ignore[misc]


async def run_expiry_check(
    pool: Pool, today: date, actor: str, *, now: datetime | None = None, lanes: int = LANES
) -> dict[str, Any]:
    """Reminders and auto-pause for `today`, committed in chunks of mentors; idempotent.

    `today` is a date in HLF's time zone (`core.expiry.local_date`); `now` stamps the rows
    (None: the database's clock). Each chunk is its own transaction, so no lock is held for
    long; a chunk run twice does nothing twice (unique reminders, pauses re-checked under the
    row lock), so a run cut short is finished by the next one. The chunks run on `lanes`
    connections at once (they touch disjoint mentors, so they cannot deadlock).
    """
    params = _check_params(today, actor, now)
    async with pool.connection() as conn:
        cur = await conn.execute(q("expiry_chunk_bounds"), {"size": CHUNK_MENTORS})
        ranges = iter(_ranges(await cur.fetchall()))
    reminders: list[Sequence[Any]] = []
    pauses: list[Sequence[Any] | None] = []

    async def lane() -> None:
        async with pool.connection() as conn:
            for lo, hi in ranges:  # shared: each lane takes the next chunk
                chunk = params | {"lo": lo, "hi": hi}
                async with conn.transaction():
                    cur = await conn.execute(q("expiry_send_reminders"), chunk)
                    reminders.extend(await cur.fetchall())
                    cur = await conn.execute(q("expiry_pause_expired"), chunk)
                    pauses.append(await cur.fetchone())

    await asyncio.gather(*(lane() for _ in range(max(1, lanes))))
    async with pool.connection() as conn:
        cur = await conn.execute(q("expiry_oversized_histories"), {"limit": renewals.SIZE_GUARD})
        oversized = await cur.fetchone()
    return _check_stats(today, _sum_reminders(reminders), _sum_pauses(pauses), oversized)


def size_guard(count: int, *, source: str, sample: Any = None) -> None:
    """Warn and count when histories longer than the guard were seen."""
    if count <= 0:
        return
    metrics.RENEWAL_HISTORY_SIZE_GUARD.labels(source=source).inc(count)
    log.warning(
        "renewal_history_size_guard",
        source=source,
        histories=count,
        limit=renewals.SIZE_GUARD,
        mentors=[str(m) for m in sample or []],
    )


# --- renewals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a renewal did: the entry as stored, and whether it restored the mentor."""

    mentor_id: UUID
    entry: renewals.RenewalEntry
    history_length: int
    status: str
    status_reason: str | None
    restored: bool


def renew(
    conn: Conn,
    mentor_id: UUID,
    new_expires_on: date,
    renewed_by: str,
    *,
    timezone: str | None = None,
    now: datetime | None = None,
) -> Renewal:
    """Move a certification's expiry date later, in one transaction.

    The entry is validated before the write (ValueError if the date does not move later or no
    one is named), the triggers append it and restore a mentor paused for expiry when the new
    date is not in the past in `timezone` (None: the database's `hlfsync.timezone`), and the
    entry as stored is validated again on the way back.
    """
    with conn.transaction():
        row = conn.execute(q("expiry_lock_certification"), {"mentor": mentor_id}).fetchone()
        if row is None:
            raise LookupError(f"mentor {mentor_id} has no certification")
        previous, _length = row
        before = conn.execute(q("expiry_mentor_status"), {"mentor": mentor_id}).fetchone()
        # Validate what the trigger will write, before writing anything.
        renewals.RenewalEntry(
            renewed_at=now or datetime.now(UTC),
            previous_expires_on=previous,
            new_expires_on=new_expires_on,
            renewed_by=renewed_by,
        )
        conn.execute(
            q("expiry_renewal_context"), {"actor": renewed_by, "timezone": timezone}
        ).fetchone()
        written = conn.execute(
            q("expiry_renew"), {"mentor": mentor_id, "new_expires_on": new_expires_on}
        ).fetchone()
        after = conn.execute(q("expiry_mentor_status"), {"mentor": mentor_id}).fetchone()
    if written is None or before is None or after is None:  # pragma: no cover - row was locked
        raise LookupError(f"mentor {mentor_id} vanished during its renewal")
    raw, length = written
    entry = renewals.parse_entry(raw)
    if not isinstance(entry, renewals.RenewalEntry) or entry.new_expires_on != new_expires_on:
        raise RuntimeError(f"the renewal trigger wrote an unexpected entry: {raw!r}")
    if renewals.exceeds_size_guard(int(length)):
        size_guard(1, source="renewal", sample=[mentor_id])
    restored = before[0] != "active" and after[0] == "active"
    log.info(
        "certification_renewed",
        mentor_id=str(mentor_id),
        previous_expires_on=previous.isoformat(),
        new_expires_on=new_expires_on.isoformat(),
        restored=restored,
        history_length=int(length),
    )
    return Renewal(mentor_id, entry, int(length), after[0], after[1], restored)


def read_history(
    conn: Conn, mentor_id: UUID
) -> tuple[list[renewals.RenewalEntry | renewals.UnknownEntry], list[renewals.Problem]]:
    """A certification's renewal history through the versioned parser; never raises on data."""
    row = conn.execute(q("expiry_renewal_history"), {"mentor": mentor_id}).fetchone()
    if row is None:
        raise LookupError(f"mentor {mentor_id} has no certification")
    entries, problems = renewals.parse_history(list(row[0]))
    if problems:
        log.warning(
            "renewal_history_unreadable_entries",
            mentor_id=str(mentor_id),
            unknown_version=sum(p.kind == "unknown_version" for p in problems),
            invalid=sum(p.kind == "invalid" for p in problems),
        )
    return entries, problems


# --- compensation -----------------------------------------------------------------------------


def _compensation_result(row: Sequence[Any] | None) -> dict[str, Any]:
    findings, alert_id, deliveries = row or (0, None, 0)
    result = {
        "duplicates": int(findings),
        "alert_id": alert_id,
        "new_alert": alert_id is not None,
        "deliveries": int(deliveries),
    }
    if findings:
        # It should never fire: each finding means a constraint was bypassed or a bug.
        log.error("expiry_duplicates_found", **result)
    return result


async def run_compensation(pool: Pool, *, now: datetime | None = None) -> dict[str, Any]:
    """Look for duplicate reminders or pauses; alert administrators once per set of findings."""
    async with pool.connection() as conn:
        cur = await conn.execute(q("raise_compensation_alert"), {"now": now})
        return _compensation_result(await cur.fetchone())


def duplicates(conn: Conn) -> list[tuple[Any, ...]]:
    """The duplicates themselves (finding, mentor, period, threshold, copies), for inspection."""
    return [tuple(r) for r in conn.execute(q("expiry_duplicates")).fetchall()]
