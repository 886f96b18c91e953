"""Break-glass: push every divergent mentor's state now, with credentials given on the spot.

For when the automated path is broken (say HLF IT rotated the secret without notice). It reads
Dynamics with the new credentials, queues what diverges, then works the whole queue itself,
due or not, bypassing the breaker — but claiming each operation exactly as a worker does (so
running workers never do the same one), and preparing, calling and settling it through the
worker's own code (`handlers.prepare`, `handlers.call`, `handlers.settle`), auditing as
`break-glass`. Transient failures are left to the workers' normal retries; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hlfsync.core import outcome, retry
from hlfsync.core.clock import Clock
from hlfsync.core.errors import Permanent, SyncFailure
from hlfsync.db import links
from hlfsync.db import reconcile as reconcile_mod
from hlfsync.db.pool import Pool
from hlfsync.db.queries import q
from hlfsync.db.queue import CallFacts, Operation, OperationStore
from hlfsync.dynamics.port import DynamicsClient
from hlfsync.worker import handlers

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
    pool: Pool
    store: OperationStore
    client: DynamicsClient
    policy: retry.RetryPolicy
    clock: Clock
    rng: random.Random
    summary: Summary
    alternate_key_column: str | None
    # Operations given back in this run (held or unlinked) and why: a later claim meets them
    # again, since break-glass claims everything waiting, and must not loop on them.
    held: dict[int, str] = field(default_factory=dict)


async def _one(op: Operation, ctx: _Ctx) -> None:
    try:
        change = await handlers.prepare(op, ctx.pool, ctx.alternate_key_column)
    except Permanent as problem:
        sent = handlers.Sent(problem, CallFacts())
        attempt = outcome.Attempt(op.attempt_count, ctx.clock.now(), admission=None, answer=problem)
    else:
        sent = await handlers.call(change, ctx.client, ctx.pool)
        attempt = outcome.Attempt(op.attempt_count, ctx.clock.now(), answer=sent.answer)
    decided = await handlers.settle(op, attempt, sent.facts, store=ctx.store, policy=ctx.policy,
                                    rng=ctx.rng)  # fmt: skip
    _count(ctx, op, decided, sent.answer)


def _count(ctx: _Ctx, op: Operation, decided: outcome.Outcome, answer: Exception | None) -> None:
    summary = ctx.summary
    if isinstance(decided, outcome.Succeeded):
        summary.done += 1
        return
    if isinstance(decided, outcome.Held):
        # Credentials, a broken contract or an unaddressable mentor: wrong for everyone or not
        # this operation's fault, so it waits for the workers (no dead letter).
        ctx.held[op.id] = decided.error
        if decided.why is outcome.Hold.UNLINKED:
            summary.unlinked += 1  # a known, visible state (status, dashboard), not a failure
            return
        summary.skipped += 1
    elif isinstance(decided, outcome.RetryAt):
        summary.left_for_retry += 1
    else:
        summary.failed += 1
    if isinstance(answer, SyncFailure):
        summary.errors.append(answer.summary())
    elif isinstance(decided, outcome.DeadLettered):
        summary.errors.append(decided.reason)  # poison: an adapter bug, named and quoted


async def run(
    pool: Pool,
    client: DynamicsClient,
    clock: Clock,
    policy: retry.RetryPolicy,
    *,
    page_size: int,
    alternate_key_column: str | None = None,
    concurrency: int = 16,
    on_total: Callable[[int], None] = lambda _: None,
    on_progress: Callable[[int], None] = lambda _: None,
) -> Summary:
    """Queue the divergence, then drain the whole queue directly. Returns what happened."""
    if alternate_key_column is not None:
        await links.check_column(pool, alternate_key_column)  # as the workers do at start
    summary = Summary()
    report = await reconcile_mod.reconcile(
        pool, client, now=clock.now(), dry_run=False, page_size=page_size, actor=ACTOR,
        source="break_glass", priority=PRIORITY,
    )  # fmt: skip
    summary.queued_by_reconcile = report.queued
    store = OperationStore(pool, worker_id="break-glass", actor=ACTOR)
    async with pool.connection() as conn:
        row = await (await conn.execute(q("pending_count"))).fetchone()
    on_total(int(row[0]) if row else 0)
    rng = random.Random()  # noqa: S311 - jitter, not secrets
    ctx = _Ctx(pool, store, client, policy, clock, rng, summary, alternate_key_column)
    while True:
        now = clock.now()
        ops = await store.claim(limit=concurrency, now=now, lease_s=120, due=now + FAR_FUTURE)
        if not ops:
            break
        fresh = [op for op in ops if op.id not in ctx.held]
        for op in ops:
            if op.id in ctx.held:  # already tried in this run: back to the workers, as it was
                await store.record(op, outcome.Held(outcome.Hold.NOT_SENT, now, ctx.held[op.id]),
                                   now=now)  # fmt: skip
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
