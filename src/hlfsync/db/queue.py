"""OperationStore: the sync queue's state changes, each a guarded statement (`sql/queue.sql`).

An operation is one `sync_queue` row: a change of one mentor's listing on its way to Dynamics.

An attempt's outcome (`core.outcome`) is written by one call, `record`, which picks the guarded
statement. Every write names the claim it holds (`claim_count`): zero rows back means another
actor moved the operation (a rescuer after the lease, a newer claim) and the write is dropped,
never an error. Dead letters raise their alert in the same transaction, so neither is ever lost
alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from hlfsync.core import outcome
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.notify import payloads

SUCCESS_BATCH = 500
# Priorities as the queue orders them: bulk work (the nightly expiry's pauses, reconciliation)
# below a person's change (the outbox trigger's default), force-sync and re-queues above.
BULK_PRIORITY = -10
LIVE_PRIORITY = 0
LOWEST_PRIORITY = -32768
HIGHEST_PRIORITY = 32767


@dataclass(frozen=True, slots=True)
class Lane:
    """The priorities one sync loop claims: a worker process runs the live lane on its main
    event loop and the bulk lane on its background loop, so bulk work never holds a live call."""

    name: str
    lowest: int
    highest: int


EVERY = Lane("every", LOWEST_PRIORITY, HIGHEST_PRIORITY)
LIVE = Lane("live", LIVE_PRIORITY, HIGHEST_PRIORITY)
BULK = Lane("bulk", LOWEST_PRIORITY, LIVE_PRIORITY - 1)
# The audit row of a held operation whose call was made; a hold without a call writes none.
HOLD_EVENTS = {
    outcome.Hold.PROBE_FAILED: "sync_probe_failed",
    outcome.Hold.CREDENTIALS: "sync_auth_refused",
    outcome.Hold.CONTRACT: "sync_contract_held",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One claimed sync operation."""

    id: int
    mentor_id: UUID
    operation: str
    payload: Any
    source: str
    attempt_count: int
    throttle_count: int
    claim_count: int
    created_at: datetime
    priority: int = 0

    @property
    def live(self) -> bool:
        """A person's change (or a force-sync): never waits behind bulk work."""
        return self.priority >= LIVE_PRIORITY

    @property
    def correlation_id(self) -> str:
        """Unique per claim: ties the HTTP call, the log line and the audit row together."""
        return f"hlfsync-{self.id}-{self.claim_count}"


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What one call to Dynamics came to, for the audit row and the log line."""

    duration_ms: float | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLettered:
    dead_letter_id: int
    mentor_id: UUID
    operation: str
    attempt_count: int
    alert_id: int | None


class OperationStore:
    """The queue as seen by workers: claim, record an attempt's outcome, rescue, enqueue."""

    def __init__(self, pool: Pool, *, worker_id: str, actor: str = "worker") -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.actor = actor
        self._successes: list[tuple[Operation, datetime, CallFacts, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def claim(
        self,
        *,
        limit: int,
        now: datetime,
        lease_s: float,
        due: datetime | None = None,
        lane: Lane = EVERY,
        min_priority: int = LOWEST_PRIORITY,
    ) -> list[Operation]:
        """Lease up to `limit` operations of `lane` due by `due` (default: now), of
        `min_priority` or more."""
        params = {"limit": limit, "now": now, "due": due or now, "worker": self.worker_id,
                  "lease": lease_s, "min_priority": max(min_priority, lane.lowest),
                  "max_priority": lane.highest}  # fmt: skip
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(q("claim_commits_without_waiting_for_the_flush"))
            # Planned at every call, never prepared: after five calls psycopg prepares a statement
            # and PostgreSQL may keep a generic plan made while the queue was small. Made at a
            # night's start, that plan seq-scans the queue for each row's running check; once the
            # first expiry check had queued its 49,000 removes, one bulk claim took 37 s.
            cur = await conn.execute(q("claim"), params, prepare=False)
            rows = await cur.fetchall()
        return [Operation(*row) for row in rows]

    async def next_due(self, lane: Lane = EVERY) -> datetime | None:
        """When the earliest waiting operation of `lane` is due (None: none waits)."""
        params = {"min_priority": lane.lowest, "max_priority": lane.highest}
        async with self.pool.connection() as conn:
            # Not prepared either: a plan made for an empty queue would scan a full one.
            row = await (await conn.execute(q("next_due"), params, prepare=False)).fetchone()
        return row[0] if row else None

    async def record(
        self,
        op: Operation,
        decided: outcome.Outcome,
        *,
        now: datetime,
        facts: CallFacts | None = None,
    ) -> bool:
        """Write what one attempt at `op` came to, with its audit row (and a dead letter's
        alert); False when the claim was lost and nothing was written."""
        facts = facts or CallFacts()
        match decided:
            case outcome.Succeeded():
                return await self._succeed(op, now=now, facts=facts)
            case outcome.RetryAt(at=at, error=error, spend_attempt=spent):
                return await self._retry(op, at=at, now=now, spent=spent, error=error, facts=facts)
            case outcome.DeadLettered(reason=reason, spent=spent):
                letter = await self._dead_letter(op, reason=reason, now=now, spent=spent,
                                                 facts=facts)  # fmt: skip
                return letter is not None
            case outcome.Held(why=why, until=until, error=error):
                return await self._release(op, at=until, now=now, error=error,
                                           event=HOLD_EVENTS.get(why), facts=facts)  # fmt: skip

    async def _succeed(self, op: Operation, *, now: datetime, facts: CallFacts) -> bool:
        """Record a success; False when the claim was lost. Concurrent calls share one write."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._successes.append((op, now, facts, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_successes())
        return await done

    async def _flush_successes(self) -> None:
        # Whatever piles up while one batch is written goes in the next: no timer, no added
        # latency when idle, fewer commits when busy.
        while self._successes:
            batch = self._successes[:SUCCESS_BATCH]
            del self._successes[:SUCCESS_BATCH]
            try:
                written = await self._write_successes(batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiter, never lost
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for op, *_, done in batch:
                if not done.done():
                    done.set_result(op.id in written)

    async def _write_successes(
        self, batch: list[tuple[Operation, datetime, CallFacts, asyncio.Future[bool]]]
    ) -> set[int]:
        params = {
            "ids": [op.id for op, *_ in batch],
            "claims": [op.claim_count for op, *_ in batch],
            "at": [now for _, now, *_ in batch],
            "durations": [facts.duration_ms for _, _, facts, _ in batch],
            "statuses": [facts.http_status for _, _, facts, _ in batch],
            "correlations": [op.correlation_id for op, *_ in batch],
            "actor": self.actor,
        }
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(q("succeed_many"), params)).fetchall()
        return {row[0] for row in rows}

    async def _retry(
        self,
        op: Operation,
        *,
        at: datetime,
        now: datetime,
        spent: bool,
        error: str,
        facts: CallFacts,
    ) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(q("lock_mentor"), {"mentor": op.mentor_id})
            cur = await conn.execute(
                q("retry_later"),
                {
                    "id": op.id,
                    "mentor": op.mentor_id,
                    "claim": op.claim_count,
                    "at": at,
                    "now": now,
                    "spent": 1 if spent else 0,
                    "throttled": 0 if spent else 1,
                    "error": error,
                    "event": "sync_retry_scheduled" if spent else "sync_throttled",
                    "actor": self.actor,
                    "delay_s": round((at - now).total_seconds(), 3),
                    "duration_ms": facts.duration_ms,
                    "http_status": facts.http_status,
                    "correlation": op.correlation_id,
                },
            )
            row = await cur.fetchone()
        return bool(row and row[0])

    async def _release(
        self,
        op: Operation,
        *,
        at: datetime,
        now: datetime,
        error: str,
        event: str | None,
        facts: CallFacts,
    ) -> bool:
        """Back to pending untouched (no attempt spent); superseded if a newer one waits.

        `event` names the audit row to write when a call was made (none when nothing was sent).
        """
        params = {
            "id": op.id, "mentor": op.mentor_id, "claim": op.claim_count, "at": at,
            "now": now, "error": error, "event": event, "actor": self.actor,
            "duration_ms": facts.duration_ms, "http_status": facts.http_status,
            "correlation": op.correlation_id,
        }  # fmt: skip
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(q("lock_mentor"), {"mentor": op.mentor_id})
            row = await (await conn.execute(q("release"), params)).fetchone()
        return bool(row and row[0])

    async def _dead_letter(
        self, op: Operation, *, reason: str, now: datetime, spent: bool, facts: CallFacts
    ) -> DeadLettered | None:
        params = {
            "id": op.id,
            "claim": op.claim_count,
            "reason": reason,
            "now": now,
            "spent": 1 if spent else 0,
            "actor": self.actor,
            "duration_ms": facts.duration_ms,
            "http_status": facts.http_status,
            "correlation": op.correlation_id,
        }
        async with self.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute(q("dead_letter"), params)).fetchone()
            if row is None:
                return None
            letter_id, mentor_id, operation, attempts = row
            alert = await (
                await conn.execute(
                    q("raise_mentor_alert"),
                    {
                        "kind": "sync_failure",
                        "key": f"dead_letter:{letter_id}",
                        "mentor": mentor_id,
                        "payload": Jsonb(payloads.build_alert_data(mentor_id, operation)),
                        "details": Jsonb({"dead_letter_id": letter_id, "reason": reason}),
                        "now": now,
                    },
                )
            ).fetchone()
        return DeadLettered(letter_id, mentor_id, operation, attempts, alert[0] if alert else None)

    async def rescue(self, *, now: datetime) -> tuple[int, int]:
        """Expired leases back to pending (or superseded); returns (rescued, superseded)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(q("lock_mentors_with_expired_leases"), {"now": now})
            row = await (
                await conn.execute(q("rescue_expired_leases"), {"now": now, "actor": "rescuer"})
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    async def enqueue(
        self, mentors: Sequence[UUID] | None, *, source: str, priority: int, actor: str
    ) -> list[tuple[UUID, int, str]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT mentor_id, sync_queue_id, operation FROM enqueue_sync(%s, %s, %s, %s)",
                [list(mentors) if mentors is not None else None, source, priority, actor],
            )
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]
