"""Break-glass: push every divergent mentor's state now, with credentials given on the spot.

For when the automated path is broken (say HLF IT rotated the secret without notice). It reads
Dynamics with the new credentials, queues what diverges, then works the whole queue itself,
due or not, bypassing the breaker — but claiming each operation exactly as a worker does (so
running workers never do the same one), classifying every error, and auditing as `break-glass`.
Transient failures are left to the workers' normal retries; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hlfsync.core import retry
from hlfsync.core.clock import Clock
from hlfsync.core.errors import Held, SyncFailure
from hlfsync.db import reconcile as reconcile_mod
from hlfsync.db.pool import Pool
from hlfsync.db.queue import CallFacts, Operation, OperationStore
from hlfsync.dynamics.port import DynamicsClient
from hlfsync.worker.handlers import UNLINKED, Unlinked, to_change

ACTOR = "break-glass"
PRIORITY = 20
FAR_FUTURE = timedelta(days=36500)


@dataclass
class Summary:
    queued_by_reconcile: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    left_for_retry: int = 0
    unlinked: int = 0  # no contact id to address: held for the workers, as they hold it
    errors: list[str] = field(default_factory=list)


@dataclass
class _Ctx:
    store: OperationStore
    client: DynamicsClient
    policy: retry.RetryPolicy
    clock: Clock
    rng: random.Random
    summary: Summary
    # Operations given back in this run (held or unlinked) and why: a later claim meets them
    # again, since break-glass claims everything waiting, and must not loop on them.
    held: dict[int, str] = field(default_factory=dict)


async def _one(op: Operation, ctx: _Ctx) -> None:
    store, client, clock, summary = ctx.store, ctx.client, ctx.clock, ctx.summary
    try:
        change = to_change(op)
        await client.apply(change)
    except (Held, Unlinked) as failure:
        # Credentials, a broken contract or an unaddressable mentor: wrong for everyone or not
        # this operation's fault, so it waits (no dead letter) like the workers would have it.
        event = "sync_auth_refused" if isinstance(failure, Held) else None
        # Worded as the workers word it, so `status` counts an unlinked one as unlinked.
        why = (f"{UNLINKED}: {failure.detail}" if isinstance(failure, Unlinked)
               else failure.summary())  # fmt: skip
        ctx.held[op.id] = why
        await store.release(op, at=clock.now(), now=clock.now(), error=why, event=event)
        if isinstance(failure, Unlinked):
            summary.unlinked += 1  # a known, visible state (status, dashboard), not a failure
            return
        summary.skipped += 1
        summary.errors.append(failure.summary())
        return
    except SyncFailure as failure:
        now = clock.now()
        decision = retry.decide(ctx.policy, op.attempt_count, failure, now, ctx.rng)
        if isinstance(decision, retry.Retry):
            await store.retry(op, at=decision.at, now=now, spent=decision.spend_attempt,
                              error=failure.summary(), facts=CallFacts())  # fmt: skip
            summary.left_for_retry += 1
        else:
            reason = getattr(decision, "reason", failure.summary())
            await store.dead_letter(op, reason=reason, now=now, spent=True, facts=CallFacts())
            summary.failed += 1
        summary.errors.append(failure.summary())
        return
    await store.succeed(op, now=clock.now(), facts=CallFacts(http_status=204))
    summary.done += 1


async def run(
    pool: Pool,
    client: DynamicsClient,
    clock: Clock,
    policy: retry.RetryPolicy,
    *,
    page_size: int,
    concurrency: int = 16,
    on_total: Callable[[int], None] = lambda _: None,
    on_progress: Callable[[int], None] = lambda _: None,
) -> Summary:
    """Queue the divergence, then drain the whole queue directly. Returns what happened."""
    summary = Summary()
    report = await reconcile_mod.reconcile(
        pool, client, now=clock.now(), dry_run=False, page_size=page_size, actor=ACTOR,
        source="break_glass", priority=PRIORITY,
    )  # fmt: skip
    summary.queued_by_reconcile = report.queued
    store = OperationStore(pool, worker_id="break-glass", actor=ACTOR)
    async with pool.connection() as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM sync_queue WHERE status = 'pending'")
        ).fetchone()
    on_total(int(row[0]) if row else 0)
    rng = random.Random()  # noqa: S311 - jitter, not secrets
    ctx = _Ctx(store, client, policy, clock, rng, summary)
    while True:
        now = clock.now()
        ops = await store.claim(limit=concurrency, now=now, lease_s=120, due=now + FAR_FUTURE)
        if not ops:
            break
        fresh = [op for op in ops if op.id not in ctx.held]
        for op in ops:
            if op.id in ctx.held:  # already tried in this run: back to the workers, as it was
                await store.release(op, at=now, now=now, error=ctx.held[op.id])
        if not fresh:
            break  # only what this run already gave back is left
        await asyncio.gather(*(_one(op, ctx) for op in fresh))
        on_progress(len(fresh))
        if summary.errors and all("auth" in e.lower() for e in summary.errors[-len(fresh) :]):
            break  # the new credentials stopped working too: stop rather than spin
    return summary


def describe(summary: Summary) -> dict[str, Any]:
    return {
        "queued_by_reconcile": summary.queued_by_reconcile,
        "done": summary.done,
        "unlinked": summary.unlinked,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "left_for_retry": summary.left_for_retry,
        "first_errors": summary.errors[:5],
    }
