"""One sync operation, start to finish: parse, admit, call, classify, decide, record.

The decisions are `core.retry.decide` and the breaker's; this module only carries them out and
emits one canonical log line per attempt. It never raises: an unexpected exception from the
adapter or an unreadable payload makes the operation a poison dead letter, never a dead worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from hlfsync.core import retry
from hlfsync.core.breaker import Admission
from hlfsync.core.clock import Clock
from hlfsync.core.errors import (
    ContractFailure,
    Held,
    NotRun,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
)
from hlfsync.core.pacing import CallLimit
from hlfsync.db import health, links
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.queue import CallFacts, Operation, OperationStore
from hlfsync.dynamics.port import DynamicsClient, ListingChange

log = structlog.get_logger("hlfsync.sync")

CREDENTIALS = health.CREDENTIALS
# An operation whose mentor cannot be addressed (no contact id, no alternate key value) is looked
# at again this often, spending nothing; linking the mentor wakes it at once (migration 0011).
UNLINKED_RECHECK = timedelta(hours=1)
UNLINKED = "unlinked"


class Unlinked(Permanent):
    """The mentor has no Dynamics contact id and no alternate key value to address it by."""


class SyncPayload(BaseModel):
    """What the outbox trigger and enqueue_sync write into `payload_json`."""

    model_config = ConfigDict(extra="allow")

    contact_id: UUID | None
    listed: bool
    changed_at: datetime | None = None


# Set (by the runner, in the task's context) for a person's change: its call takes the next free
# slot ahead of the bulk calls waiting for one.
URGENT: contextvars.ContextVar[bool] = contextvars.ContextVar("hlfsync_urgent", default=False)


class CallSlots:
    """Calls to Dynamics in flight: at most `size`, fewer after a throttle (`core.pacing`).

    Only the call holds a slot: recording its outcome does not, so the next call starts while
    the last one's outcome is being written. An urgent call (`URGENT`) goes ahead of the others.
    """

    def __init__(self, size: int) -> None:
        self.pacing = CallLimit(size)
        self.busy = 0
        self.urgent_waiting = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        urgent = URGENT.get()
        async with self._changed:
            if urgent:
                self.urgent_waiting += 1
                try:
                    await self._changed.wait_for(lambda: self.busy < self.pacing.allowed)
                finally:
                    self.urgent_waiting -= 1
                if not self.urgent_waiting and self.busy + 1 < self.pacing.allowed:
                    self._changed.notify()  # bulk calls that stood aside for this one
            else:
                await self._changed.wait_for(
                    lambda: self.busy < self.pacing.allowed and not self.urgent_waiting
                )
            self.busy += 1
        try:
            yield
        finally:
            async with self._changed:
                self.busy -= 1
                if self.urgent_waiting:
                    # Rare; the first waiters may be bulk calls that must let it pass.
                    self._changed.notify_all()
                else:
                    self._changed.notify(max(1, self.pacing.allowed - self.busy))

    def throttled(self, now: datetime, until: datetime) -> None:
        self.pacing.on_throttle(now, until)

    def succeeded(self) -> None:
        self.pacing.on_success()


@dataclass
class SyncContext:
    """Everything a handler needs; built once per worker."""

    store: OperationStore
    breaker: DynamicsCircuitBreaker
    client: DynamicsClient
    policy: retry.RetryPolicy
    clock: Clock
    rng: random.Random
    pool: Any  # the pool, for credential health writes
    slots: CallSlots = field(default_factory=lambda: CallSlots(1_000_000))
    # The peer_mentors column feeding HLFSYNC_DYNAMICS_ALTERNATE_KEY; None: no key configured.
    alternate_key_column: str | None = None


def to_change(op: Operation, key_value: str | None = None) -> ListingChange:
    """The listing change a op asks for; raises Permanent when the payload cannot say, and
    Unlinked when the contact can be addressed neither by id nor by `key_value`."""
    try:
        payload = SyncPayload.model_validate(op.payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Permanent(f"unreadable payload: {first['loc']}: {first['msg']}") from exc
    if payload.contact_id is None and key_value is None:
        raise Unlinked("mentor has no Dynamics contact id and no alternate key value")
    if payload.listed != (op.operation == "restore"):
        raise Permanent(f"payload says listed={payload.listed} for a {op.operation}")
    return ListingChange(
        mentor_id=op.mentor_id,
        contact_id=payload.contact_id,
        operation="restore" if op.operation == "restore" else "remove",
        idempotency_key=f"hlfsync-{op.id}",
        occurred_at=payload.changed_at or op.created_at,
        correlation_id=op.correlation_id,
        key_value=key_value if payload.contact_id is None else None,
    )


async def prepare(op: Operation, ctx: SyncContext) -> ListingChange:
    """`to_change`, reading the alternate key's value when the mentor has no contact id."""
    key_value = None
    unlinked = isinstance(op.payload, dict) and op.payload.get("contact_id") is None
    if unlinked and ctx.alternate_key_column is not None:
        key_value = await links.key_value(ctx.pool, ctx.alternate_key_column, op.mentor_id)
    return to_change(op, key_value)


def _bind(op: Operation) -> Any:
    return log.bind(
        queue_id=op.id,
        mentor_id=str(op.mentor_id),
        operation=op.operation,
        attempt=op.attempt_count + 1,
        correlation_id=op.correlation_id,
    )


async def _unreadable(op: Operation, ctx: SyncContext, bad: Permanent, bound: Any) -> str:
    # Nothing was sent, so no attempt is spent; a person must fix the data.
    reason = f"{retry.REQUIRES_INVESTIGATION}: {bad.summary()}"
    await ctx.store.dead_letter(op, reason=reason, now=ctx.clock.now(), spent=False,
                                facts=CallFacts())  # fmt: skip
    bound.warning("sync_attempt", outcome="dead_lettered", reason=reason)
    return "dead_lettered"


async def _unlinked(op: Operation, ctx: SyncContext, why: Unlinked, bound: Any) -> str:
    # Nothing was sent and nothing a retry can fix: held (no attempt spent, no dead letter, no
    # alert per change) until the mentor is linked or an alternate key is configured.
    now = ctx.clock.now()
    await ctx.store.release(op, at=now + UNLINKED_RECHECK, now=now,
                            error=f"{UNLINKED}: {why.detail}")  # fmt: skip
    bound.warning("sync_attempt", outcome="held_unlinked", reason=why.detail)
    return "held"


async def _held(op: Operation, ctx: SyncContext, admission: Admission, bound: Any) -> str:
    now = ctx.clock.now()
    at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
    await ctx.store.release(op, at=at, now=now, error=f"not sent: {admission.value}")
    bound.info("sync_attempt", outcome="held", admission=admission.value)
    return "held"


async def _poisoned(op: Operation, ctx: SyncContext, exc: BaseException, facts: CallFacts,
                    bound: Any) -> str:  # fmt: skip
    dead = retry.poison(exc)
    await ctx.store.dead_letter(op, reason=dead.reason, now=ctx.clock.now(), spent=True,
                                facts=facts)  # fmt: skip
    bound.error("sync_attempt", outcome="dead_lettered", reason=dead.reason)
    return "dead_lettered"


async def _succeeded(op: Operation, ctx: SyncContext, facts: CallFacts, bound: Any) -> str:
    await ctx.store.succeed(op, now=ctx.clock.now(), facts=facts)
    bound.info("sync_attempt", outcome="succeeded", duration_ms=facts.duration_ms)
    return "succeeded"


@dataclass
class _Sent:
    """What one call to Dynamics came back with: nothing (success), a failure, or a crash."""

    failure: SyncFailure | None = None
    crash: Exception | None = None
    facts: CallFacts = field(default_factory=CallFacts)


async def _apply(change: ListingChange, ctx: SyncContext) -> _Sent:
    started = time.perf_counter()
    try:
        learned = await ctx.client.apply(change)
        if learned is not None and change.contact_id is None:
            await links.store_contact_id(ctx.pool, change.mentor_id, learned)
    except SyncFailure as failure:
        return _Sent(failure, facts=CallFacts(_ms(started), http_status=failure.status))
    except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not kill the worker
        return _Sent(crash=exc, facts=CallFacts(duration_ms=_ms(started)))
    return _Sent(facts=CallFacts(duration_ms=_ms(started), http_status=204))


async def handle(op: Operation, ctx: SyncContext) -> str:
    """Run one claimed op to a recorded outcome; returns the outcome's name."""
    bound = _bind(op)
    try:
        change = await prepare(op, ctx)
    except Unlinked as why:
        return await _unlinked(op, ctx, why, bound)
    except Permanent as bad:
        return await _unreadable(op, ctx, bad, bound)
    # Admission inside the slot: a call waiting for a slot asks the breaker when it can go,
    # so one opened meanwhile stops it.
    async with ctx.slots.hold():
        admission = await ctx.breaker.admit(ctx.clock.now())
        sent = await _apply(change, ctx) if admission.allowed else None
    if sent is None:
        return await _held(op, ctx, admission, bound)
    return await _record_one(op, ctx, admission, sent, bound)


async def _record_one(
    op: Operation, ctx: SyncContext, admission: Admission, sent: _Sent, bound: Any
) -> str:
    if sent.crash is not None:
        return await _poisoned(op, ctx, sent.crash, sent.facts, bound)
    if sent.failure is None:
        ctx.slots.succeeded()
        outcome = await _succeeded(op, ctx, sent.facts, bound)
        if admission is Admission.PROBE or ctx.breaker.view.state.value != "closed":
            await close_on_success(ctx, ctx.clock.now(), proof="a sync call succeeded")
        return outcome
    return await _failed(op, ctx, sent.failure, admission=admission, facts=sent.facts,
                         bound=bound)  # fmt: skip


async def handle_many(ops: Sequence[Operation], ctx: SyncContext) -> list[str]:
    """Several claimed ops (distinct mentors) in one call to `apply_many` (a `$batch`); each
    ends in its own recorded outcome, exactly as if sent alone.

    The breaker sees the batch as one call — one success or one failure, whatever the number of
    changes in it —, so a batch failing whole counts once towards opening the circuit.
    """
    if len(ops) == 1:
        return [await handle(ops[0], ctx)]
    outcomes: dict[int, str] = {}
    ready: list[tuple[Operation, ListingChange, Any]] = []
    for op in ops:
        bound = _bind(op)
        try:
            change = await prepare(op, ctx)
        except Unlinked as why:
            outcomes[op.id] = await _unlinked(op, ctx, why, bound)
            continue
        except Permanent as bad:
            outcomes[op.id] = await _unreadable(op, ctx, bad, bound)
            continue
        if change.contact_id is None:
            # Addressed by alternate key: sent alone, so the contactid it answers is stored.
            outcomes[op.id] = await handle(op, ctx)
        else:
            ready.append((op, change, bound))
    if ready:
        for op, outcome in zip([r[0] for r in ready], await _send_many(ready, ctx), strict=True):
            outcomes[op.id] = outcome
    return [outcomes[op.id] for op in ops]


async def _send_many(
    ready: list[tuple[Operation, ListingChange, Any]], ctx: SyncContext
) -> list[str]:
    first, *rest = ready
    answers: list[Exception | None] | None = None
    probe: _Sent | None = None
    crash: Exception | None = None
    async with ctx.slots.hold():
        admission = await ctx.breaker.admit(ctx.clock.now())
        started = time.perf_counter()
        if admission is Admission.PROBE:
            # This worker won the one probe: it is a single call; the rest wait for its verdict.
            probe = await _apply(first[1], ctx)
        elif admission is Admission.ALLOW:
            try:
                answers = _checked(
                    await ctx.client.apply_many([change for _, change, _ in ready]), ready
                )
            except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not kill the worker
                crash = exc
        duration = _ms(started)
    if admission is not Admission.ALLOW:
        held = [_held(op, ctx, admission, bound) for op, _, bound in rest]
        head = (_record_one(first[0], ctx, admission, probe, first[2]) if probe is not None
                else _held(first[0], ctx, admission, first[2]))  # fmt: skip
        return list(await asyncio.gather(head, *held))
    if crash is not None or answers is None:
        error = crash or RuntimeError("apply_many gave no answer")
        facts = CallFacts(duration_ms=duration)
        return list(await asyncio.gather(
            *(_poisoned(op, ctx, error, facts, bound) for op, _, bound in ready)
        ))  # fmt: skip
    results = answers
    now = ctx.clock.now()
    if any(result is None for result in results):
        ctx.slots.succeeded()  # one request, one round
    await _batch_verdict(ctx, [r for r in results if isinstance(r, SyncFailure)],
                         len(results), now)  # fmt: skip

    async def settle(op: Operation, bound: Any, result: Exception | None) -> str:
        if result is None:
            return await _succeeded(op, ctx, CallFacts(duration_ms=duration, http_status=204),
                                    bound)  # fmt: skip
        if not isinstance(result, SyncFailure):
            return await _poisoned(op, ctx, result, CallFacts(duration_ms=duration), bound)
        facts = CallFacts(duration_ms=duration, http_status=result.status)
        return await _settle(op, ctx, result, facts=facts, bound=bound)

    pairs = zip(ready, results, strict=True)
    return list(await asyncio.gather(*(settle(op, bound, r) for (op, _, bound), r in pairs)))


async def _batch_verdict(
    ctx: SyncContext, failures: list[SyncFailure], sent: int, now: datetime
) -> None:
    """What one batch tells the breaker. A throttle or a refused credential anywhere in it
    concerns every call; otherwise any answer that is not a transient failure proves Dynamics
    is up, and a batch that failed whole is one failure."""
    throttles = [f for f in failures if isinstance(f, Throttled)]
    refusals = [f for f in failures if isinstance(f, Held)]
    if throttles:
        await _touch_breaker(ctx, max(throttles, key=lambda f: f.retry_after_s), now)
    if refusals:
        await _touch_breaker(ctx, refusals[0], now)
    if throttles or refusals:
        return
    # A part Dynamics never ran says nothing about it; the part that stopped the batch does.
    transient = [f for f in failures if isinstance(f, Transient) and not isinstance(f, NotRun)]
    ran = sent - sum(isinstance(f, NotRun) for f in failures)
    if transient and len(transient) == ran:
        await _touch_breaker(ctx, transient[0], now)
    elif ctx.breaker.view.state.value != "closed" and (
        len(failures) < sent or _proves_contract(ctx, failures)
    ):
        await close_on_success(ctx, now, proof="a $batch was answered")


def _checked(results: list[Exception | None], ready: Sequence[object]) -> list[Exception | None]:
    if len(results) != len(ready):
        raise RuntimeError(f"apply_many gave {len(results)} results for {len(ready)} changes")
    return results


async def _touch_breaker(ctx: SyncContext, failure: SyncFailure, now: datetime) -> None:
    """What one failed call tells the shared breaker (a permanent answer tells it nothing bad)."""
    summary = failure.summary()
    if isinstance(failure, Transient):
        await ctx.breaker.on_failure(now, summary)
    elif isinstance(failure, Throttled):
        until = now + timedelta(seconds=failure.retry_after_s)
        ctx.slots.throttled(now, until)
        await ctx.breaker.on_throttled(now, until)
    elif isinstance(failure, Held):
        reason = hold_reason(failure)
        await ctx.breaker.on_auth_failure(now, summary, reason)
        await health.record_failure(ctx.pool, name=health.HOLD_CHECKS[reason],
                                    contract=ctx.client.contract, detail=summary,
                                    now=now)  # fmt: skip


def hold_reason(failure: Held) -> str:
    """`contract` or `auth`: which check's failing spell (and alert) a held failure belongs to."""
    return "contract" if isinstance(failure, ContractFailure) else "auth"


def _proves_contract(ctx: SyncContext, failures: Sequence[SyncFailure]) -> bool:
    # A permanent answer proves Dynamics is up and the credentials work, but not that a broken
    # contract is fixed: only a success (or the health check's probe) ends a contract hold.
    return ctx.breaker.hold_reason != "contract" or not failures


async def close_on_success(ctx: SyncContext, now: datetime, *, proof: str) -> None:
    """Close the breaker after a success; if it was held (credentials or contract), end the
    failing spell, which raises the administrators' one "recovered" notice."""
    held = ctx.breaker.view.auth_failed
    await ctx.breaker.on_success(now)
    if held:
        await health.record_recovered(ctx.pool, detail=proof, now=now)


async def _failed(
    op: Operation,
    ctx: SyncContext,
    failure: SyncFailure,
    *,
    admission: Admission,
    facts: CallFacts,
    bound: Any,
) -> str:
    now = ctx.clock.now()
    summary = failure.summary()
    if isinstance(failure, Transient) and admission is Admission.PROBE:
        # The probe only tells whether the outage is over; the operation that carried it must
        # not pay for the outage, or a long one would dead-letter mentors one probe at a time.
        await ctx.breaker.on_failure(now, summary)
        at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
        await ctx.store.release(op, at=at, now=now, error=f"probe failed: {summary}",
                                event="sync_probe_failed", facts=facts)  # fmt: skip
        bound.warning("sync_attempt", outcome="probe_failed", error=summary,
                      http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return "probe_failed"
    if isinstance(failure, Permanent):
        if (
            admission is Admission.PROBE or ctx.breaker.view.state.value != "closed"
        ) and _proves_contract(ctx, [failure]):
            # A permanent answer still proves Dynamics is up and the credentials work.
            await close_on_success(ctx, now, proof="Dynamics answered a sync call")
    else:
        await _touch_breaker(ctx, failure, now)
    return await _settle(op, ctx, failure, facts=facts, bound=bound)


async def _settle(
    op: Operation, ctx: SyncContext, failure: SyncFailure, *, facts: CallFacts, bound: Any
) -> str:
    """Carry out the retry policy's decision for one failed call (the breaker already knows)."""
    now = ctx.clock.now()
    decision = retry.decide(ctx.policy, op.attempt_count, failure, now, ctx.rng)
    summary = failure.summary()
    if isinstance(decision, retry.Retry):
        await ctx.store.retry(op, at=decision.at, now=now, spent=decision.spend_attempt,
                              error=summary, facts=facts)  # fmt: skip
        outcome = "retry_scheduled" if decision.spend_attempt else "throttled"
        bound.warning("sync_attempt", outcome=outcome, error=summary,
                      delay_s=round((decision.at - now).total_seconds(), 3),
                      http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return outcome
    if isinstance(decision, retry.DeadLetter):
        await ctx.store.dead_letter(op, reason=decision.reason, now=now, spent=True, facts=facts)
        bound.error("sync_attempt", outcome="dead_lettered", reason=decision.reason,
                    http_status=failure.status, duration_ms=facts.duration_ms)  # fmt: skip
        return "dead_lettered"
    # Hold: credentials failed, or the contract is broken for everyone. The operation goes back
    # untouched (no attempt spent) and waits for a probe to pass.
    reason = hold_reason(failure) if isinstance(failure, Held) else "auth"
    event = "sync_contract_held" if reason == "contract" else "sync_auth_refused"
    at = ctx.breaker.wait_until(now) or now + timedelta(seconds=1)
    await ctx.store.release(op, at=at, now=now, error=summary, event=event,
                            facts=facts)  # fmt: skip
    outcome = "held_for_contract" if reason == "contract" else "held_for_credentials"
    bound.error("sync_attempt", outcome=outcome, error=summary,
                http_status=failure.status)  # fmt: skip
    return "held"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
