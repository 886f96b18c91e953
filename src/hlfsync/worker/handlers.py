"""One sync operation, start to finish: parse, admit, call, classify, decide, record.

The decisions are `core.retry.decide` and the breaker's; this module only carries them out and
emits one canonical log line per attempt. It never raises: an unexpected exception from the
adapter or an unreadable payload makes the operation a poison dead letter, never a dead worker.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from hlfsync.core import retry
from hlfsync.core.breaker import Admission
from hlfsync.core.clock import Clock
from hlfsync.core.errors import AuthFailure, Permanent, SyncFailure, Throttled, Transient
from hlfsync.dataverse.base import DynamicsClient, ListingChange
from hlfsync.db import health
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.jobs import CallFacts, Job, JobStore

log = structlog.get_logger("hlfsync.sync")

CREDENTIALS = "dynamics"


class SyncPayload(BaseModel):
    """What the outbox trigger and enqueue_sync write into `payload_json`."""

    model_config = ConfigDict(extra="allow")

    contact_id: UUID | None
    listed: bool
    changed_at: datetime | None = None


@dataclass
class SyncContext:
    """Everything a handler needs; built once per worker."""

    store: JobStore
    breaker: DynamicsCircuitBreaker
    client: DynamicsClient
    policy: retry.RetryPolicy
    clock: Clock
    rng: random.Random
    pool: Any  # the pool, for credential health writes


def to_change(job: Job) -> ListingChange:
    """The listing change a job asks for; raises Permanent when the payload cannot say."""
    try:
        payload = SyncPayload.model_validate(job.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Permanent(f"unreadable payload: {first['loc']}: {first['msg']}") from exc
    if payload.contact_id is None:
        raise Permanent("mentor has no Dynamics contact id")
    if payload.listed != (job.operation == "restore"):
        raise Permanent(f"payload says listed={payload.listed} for a {job.operation}")
    return ListingChange(
        mentor_id=job.mentor_id,
        contact_id=payload.contact_id,
        operation="restore" if job.operation == "restore" else "remove",
        idempotency_key=f"hlfsync-{job.id}",
        occurred_at=payload.changed_at or job.created_at,
        correlation_id=job.correlation_id,
    )


async def handle(job: Job, ctx: SyncContext) -> str:
    """Run one claimed job to a recorded outcome; returns the outcome's name."""
    bound = log.bind(
        queue_id=job.id,
        mentor_id=str(job.mentor_id),
        operation=job.operation,
        attempt=job.attempt_count + 1,
        correlation_id=job.correlation_id,
    )
    try:
        change = to_change(job)
    except Permanent as bad:
        # Nothing was sent, so no attempt is spent; a person must fix the data.
        reason = f"{retry.REQUIRES_INVESTIGATION}: {bad.summary()}"
        await ctx.store.dead_letter(job, reason=reason, now=ctx.clock.now(), spent=False,
                                    facts=CallFacts())  # fmt: skip
        bound.warning("sync_attempt", outcome="dead_lettered", reason=reason)
        return "dead_lettered"

    now = ctx.clock.now()
    admission = await ctx.breaker.admit(now)
    if not admission.allowed:
        at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
        await ctx.store.release(job, at=at, now=now, error=f"not sent: {admission.value}")
        bound.info("sync_attempt", outcome="held", admission=admission.value)
        return "held"

    started = time.perf_counter()
    failure: SyncFailure | None = None
    try:
        await ctx.client.apply(change)
    except SyncFailure as caught:
        failure = _keep(caught)
    except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not kill the worker
        facts = CallFacts(duration_ms=_ms(started))
        dead = retry.poison(exc)
        await ctx.store.dead_letter(job, reason=dead.reason, now=ctx.clock.now(), spent=True,
                                    facts=facts)  # fmt: skip
        bound.error("sync_attempt", outcome="dead_lettered", reason=dead.reason)
        return "dead_lettered"
    facts = CallFacts(duration_ms=_ms(started), http_status=failure.status if failure else 204)
    now = ctx.clock.now()
    if failure is None:
        await ctx.store.succeed(job, now=now, facts=facts)
        if admission is Admission.PROBE or ctx.breaker.view.state.value != "closed":
            await ctx.breaker.on_success(now)
        bound.info("sync_attempt", outcome="succeeded", duration_ms=facts.duration_ms)
        return "succeeded"
    return await _failed(job, ctx, failure, admission=admission, facts=facts, bound=bound)


def _keep(failure: SyncFailure) -> SyncFailure:
    # Python unbinds an `except ... as` name at the end of the block; hand it out first.
    return failure


async def _failed(
    job: Job,
    ctx: SyncContext,
    failure: SyncFailure,
    *,
    admission: Admission,
    facts: CallFacts,
    bound: Any,
) -> str:
    now = ctx.clock.now()
    decision = retry.decide(ctx.policy, job.attempt_count, failure, now, ctx.rng)
    summary = failure.summary()
    if isinstance(failure, Transient) and admission is Admission.PROBE:
        # The probe only tells whether the outage is over; the operation that carried it must
        # not pay for the outage, or a long one would dead-letter mentors one probe at a time.
        await ctx.breaker.on_failure(now, summary)
        at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
        await ctx.store.release(job, at=at, now=now, error=f"probe failed: {summary}",
                                event="sync_probe_failed", facts=facts)  # fmt: skip
        bound.warning("sync_attempt", outcome="probe_failed", error=summary,
                      http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return "probe_failed"
    if isinstance(failure, Transient):
        await ctx.breaker.on_failure(now, summary)
    elif isinstance(failure, Throttled):
        await ctx.breaker.on_throttled(now, now + timedelta(seconds=failure.retry_after_s))
    elif isinstance(failure, AuthFailure):
        await ctx.breaker.on_auth_failure(now, summary)
        await health.record_failure(ctx.pool, name=CREDENTIALS, contract=ctx.client.contract,
                                    detail=summary, now=now)  # fmt: skip
    elif admission is Admission.PROBE or ctx.breaker.view.state.value != "closed":
        # A permanent answer still proves Dynamics is up and the credentials work.
        await ctx.breaker.on_success(now)

    if isinstance(decision, retry.Retry):
        await ctx.store.retry(job, at=decision.at, now=now, spent=decision.spend_attempt,
                              error=summary, facts=facts)  # fmt: skip
        outcome = "retry_scheduled" if decision.spend_attempt else "throttled"
        bound.warning("sync_attempt", outcome=outcome, error=summary,
                      delay_s=round((decision.at - now).total_seconds(), 3),
                      http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return outcome
    if isinstance(decision, retry.DeadLetter):
        await ctx.store.dead_letter(job, reason=decision.reason, now=now, spent=True, facts=facts)
        bound.error("sync_attempt", outcome="dead_lettered", reason=decision.reason,
                    http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return "dead_lettered"
    # Hold: credentials failed. The operation goes back untouched and waits for them.
    at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
    await ctx.store.release(job, at=at, now=now, error=summary, event="sync_auth_refused",
                            facts=facts)  # fmt: skip
    bound.error("sync_attempt", outcome="held_for_credentials", error=summary,
                http_status=failure.status)  # fmt: skip
    return "held"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
