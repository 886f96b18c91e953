"""One sync operation, start to finish: prepare, admit, call, tell the breaker, decide, record.

The decisions are `core.outcome.decide` (with `core.retry`) and `core.breaker`'s; this module
carries them out in that order, writes each outcome with one `OperationStore.record` and emits
one canonical log line per attempt. It never raises: an unexpected exception from the adapter or
an unreadable payload makes the operation a poison dead letter, never a dead worker.
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

from hlfsync.core import breaker, outcome, retry
from hlfsync.core.breaker import Admission
from hlfsync.core.clock import Clock
from hlfsync.core.errors import (
    FailureClass,
    Held,
    NotRun,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
    Unlinked,
)
from hlfsync.core.pacing import CallLimit
from hlfsync.db import health, links
from hlfsync.db.breaker import DynamicsCircuitBreaker
from hlfsync.db.queue import CallFacts, Operation, OperationStore
from hlfsync.dynamics.port import DynamicsClient, ListingChange

log = structlog.get_logger("hlfsync.sync")


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
    """The listing change an operation asks for; raises Permanent when the payload cannot say,
    and Unlinked when the contact can be addressed neither by id nor by `key_value`."""
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


async def prepare(op: Operation, pool: Any, alternate_key_column: str | None) -> ListingChange:
    """`to_change`, reading the alternate key's value when the mentor has no contact id."""
    key_value = None
    unlinked = isinstance(op.payload, dict) and op.payload.get("contact_id") is None
    if unlinked and alternate_key_column is not None:
        key_value = await links.key_value(pool, alternate_key_column, op.mentor_id)
    return to_change(op, key_value)


@dataclass(frozen=True, slots=True)
class Sent:
    """What one call to Dynamics came back with (None: success) and what it came to."""

    answer: Exception | None
    facts: CallFacts


async def call(change: ListingChange, client: DynamicsClient, pool: Any) -> Sent:
    """Make one call; a contact id Dynamics tells us (addressed by key) is stored at once."""
    started = time.perf_counter()
    try:
        learned = await client.apply(change)
        if learned is not None and change.contact_id is None:
            await links.store_contact_id(pool, change.mentor_id, learned)
    except Exception as exc:  # noqa: BLE001 - failures are answers; a bug must not kill the worker
        return Sent(exc, facts_of(exc, _ms(started)))
    return Sent(None, facts_of(None, _ms(started)))


def facts_of(answer: BaseException | None, duration_ms: float) -> CallFacts:
    """A call's facts for its audit row: its duration and the HTTP status it met, if known."""
    if answer is None:
        return CallFacts(duration_ms, http_status=204)
    return CallFacts(duration_ms, http_status=getattr(answer, "status", None))


async def settle(
    op: Operation,
    attempt: outcome.Attempt,
    facts: CallFacts,
    *,
    store: OperationStore,
    policy: retry.RetryPolicy,
    rng: random.Random,
) -> outcome.Outcome:
    """Decide what `attempt` comes to and write it: the one path from an attempt to the queue,
    for the worker and break-glass alike."""
    decided = outcome.decide(attempt, policy, rng)
    await store.record(op, decided, now=attempt.now, facts=facts)
    return decided


async def handle(op: Operation, ctx: SyncContext) -> outcome.Outcome:
    """Run one claimed operation to a recorded outcome, and return it."""
    try:
        change = await prepare(op, ctx.pool, ctx.alternate_key_column)
    except Permanent as problem:
        return await _unsent(op, ctx, problem)
    # Admission inside the slot: a call waiting for a slot asks the breaker when it can go,
    # so one opened meanwhile stops it.
    async with ctx.slots.hold():
        admission = await ctx.breaker.admit(ctx.clock.now())
        sent = await call(change, ctx.client, ctx.pool) if admission.allowed else None
    if sent is None:
        return await _settle(op, ctx, _attempt(op, ctx, admission, sent=False), CallFacts())
    await _hear_one(ctx, admission, sent.answer)
    return await _settle(op, ctx, _attempt(op, ctx, admission, sent.answer), sent.facts)


async def handle_many(ops: Sequence[Operation], ctx: SyncContext) -> list[outcome.Outcome]:
    """Several claimed operations (distinct mentors) in one call to `apply_many` (a `$batch`);
    each ends in its own recorded outcome, exactly as if sent alone.

    The breaker sees the batch as one call — one success or one failure, whatever the number of
    changes in it —, so a batch failing whole counts once towards opening the circuit.
    """
    if len(ops) == 1:
        return [await handle(ops[0], ctx)]
    outcomes: dict[int, outcome.Outcome] = {}
    ready: list[tuple[Operation, ListingChange]] = []
    for op in ops:
        try:
            change = await prepare(op, ctx.pool, ctx.alternate_key_column)
        except Permanent as problem:
            outcomes[op.id] = await _unsent(op, ctx, problem)
            continue
        if change.contact_id is None:
            # Addressed by alternate key: sent alone, so the contactid it answers is stored.
            outcomes[op.id] = await handle(op, ctx)
        else:
            ready.append((op, change))
    if ready:
        for (op, _), decided in zip(ready, await _send_many(ready, ctx), strict=True):
            outcomes[op.id] = decided
    return [outcomes[op.id] for op in ops]


async def _send_many(
    ready: list[tuple[Operation, ListingChange]], ctx: SyncContext
) -> list[outcome.Outcome]:
    first_change = ready[0][1]
    answers: list[Exception | None] | None = None
    probe: Sent | None = None
    crash: Exception | None = None
    async with ctx.slots.hold():
        admission = await ctx.breaker.admit(ctx.clock.now())
        started = time.perf_counter()
        if admission is Admission.PROBE:
            # This worker won the one probe: it is a single call; the rest wait for its verdict.
            probe = await call(first_change, ctx.client, ctx.pool)
        elif admission is Admission.ALLOW:
            try:
                answers = _checked(await ctx.client.apply_many([c for _, c in ready]), ready)
            except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not kill the worker
                crash = exc
        duration = _ms(started)
    if answers is None and crash is None:
        return await _probed_or_refused(ready, ctx, admission, probe)
    if answers is None:
        # apply_many raising (or answering the wrong number of results) is a bug in the adapter.
        answers = [crash or RuntimeError("apply_many gave no answer")] * len(ready)
    elif any(answer is None for answer in answers):
        ctx.slots.succeeded()  # one request, one round
    if crash is None:
        await _batch_verdict(ctx, [a for a in answers if isinstance(a, SyncFailure)],
                             len(answers), ctx.clock.now())  # fmt: skip
    return list(await asyncio.gather(*(
        _settle(op, ctx, _attempt(op, ctx, admission, answer), facts_of(answer, duration))
        for (op, _), answer in zip(ready, answers, strict=True)
    )))  # fmt: skip


async def _probed_or_refused(
    ready: list[tuple[Operation, ListingChange]],
    ctx: SyncContext,
    admission: Admission,
    probe: Sent | None,
) -> list[outcome.Outcome]:
    """A batch the breaker refused, or of which only the first went out, as the probe."""
    (first, _), *rest = ready
    # The unsent wait for what the breaker said before it hears the probe's answer.
    unsent = [(op, _attempt(op, ctx, admission, sent=False)) for op, _ in rest]
    if probe is None:
        unsent.insert(0, (first, _attempt(first, ctx, admission, sent=False)))
    sent: list[tuple[Operation, outcome.Attempt, CallFacts]] = []
    if probe is not None:
        await _hear_one(ctx, admission, probe.answer)
        sent.append((first, _attempt(first, ctx, admission, probe.answer), probe.facts))
    everyone = sent + [(op, attempt, CallFacts()) for op, attempt in unsent]
    return list(await asyncio.gather(*(_settle(op, ctx, a, facts) for op, a, facts in everyone)))


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
    elif breaker.success_closes(ctx.breaker.view, Admission.ALLOW) and (
        len(failures) < sent or _proves_contract(ctx, failures)
    ):
        await close_on_success(ctx, now, proof="a $batch was answered")


def _checked(results: list[Exception | None], ready: Sequence[object]) -> list[Exception | None]:
    if len(results) != len(ready):
        raise RuntimeError(f"apply_many gave {len(results)} results for {len(ready)} changes")
    return results


async def _hear_one(ctx: SyncContext, admission: Admission, answer: Exception | None) -> None:
    """What one call tells the breaker and the pacing (a crash tells them nothing)."""
    now = ctx.clock.now()
    closes = breaker.success_closes(ctx.breaker.view, admission)
    if answer is None:
        ctx.slots.succeeded()
        if closes:
            await close_on_success(ctx, now, proof="a sync call succeeded")
    elif isinstance(answer, Permanent):
        if closes and _proves_contract(ctx, [answer]):
            # A permanent answer still proves Dynamics is up and the credentials work.
            await close_on_success(ctx, now, proof="Dynamics answered a sync call")
    elif isinstance(answer, SyncFailure):
        await _touch_breaker(ctx, answer, now)


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
        # The hold's reason is the failure's class: `auth` or `contract` (migration 0011).
        reason = failure.kind.value
        await ctx.breaker.on_auth_failure(now, summary, reason)
        await health.record_failure(ctx.pool, name=health.HOLD_CHECKS[reason],
                                    contract=ctx.client.contract, detail=summary,
                                    now=now)  # fmt: skip


def _proves_contract(ctx: SyncContext, failures: Sequence[SyncFailure]) -> bool:
    # A permanent answer proves Dynamics is up and the credentials work, but not that a broken
    # contract is fixed: only a success (or the health check's probe) ends a contract hold.
    return ctx.breaker.hold_reason != FailureClass.CONTRACT or not failures


async def close_on_success(ctx: SyncContext, now: datetime, *, proof: str) -> None:
    """Close the breaker after a success; if it was held (credentials or contract), end the
    failing spell, which raises the administrators' one "recovered" notice."""
    held = ctx.breaker.view.auth_failed
    await ctx.breaker.on_success(now)
    if held:
        await health.record_recovered(ctx.pool, detail=proof, now=now)


def _attempt(
    op: Operation,
    ctx: SyncContext,
    admission: Admission,
    answer: Exception | None = None,
    *,
    sent: bool = True,
) -> outcome.Attempt:
    now = ctx.clock.now()
    return outcome.Attempt(op.attempt_count, now, admission, answer,
                           calls_resume=ctx.breaker.wait_until(now), sent=sent)  # fmt: skip


async def _unsent(op: Operation, ctx: SyncContext, problem: Permanent) -> outcome.Outcome:
    # Nothing was sent: the payload cannot say what to do, or the contact cannot be addressed.
    attempt = outcome.Attempt(op.attempt_count, ctx.clock.now(), admission=None, answer=problem)
    return await _settle(op, ctx, attempt, CallFacts())


async def _settle(
    op: Operation, ctx: SyncContext, attempt: outcome.Attempt, facts: CallFacts
) -> outcome.Outcome:
    decided = await settle(op, attempt, facts, store=ctx.store, policy=ctx.policy, rng=ctx.rng)
    _log(op, attempt, decided, facts)
    return decided


def _log(
    op: Operation, attempt: outcome.Attempt, decided: outcome.Outcome, facts: CallFacts
) -> None:
    """The attempt's canonical log line (docs/operations.md)."""
    fields: dict[str, Any] = {"http_status": facts.http_status, "duration_ms": facts.duration_ms}
    level = "warning"
    match decided:
        case outcome.Succeeded():
            level = "info"
        case outcome.RetryAt(at=at, error=error):
            fields |= {"error": error, "delay_s": round((at - attempt.now).total_seconds(), 3)}
        case outcome.DeadLettered(reason=reason, spent=spent):
            level = "error" if spent else "warning"
            fields["reason"] = reason
        case outcome.Held(why=outcome.Hold.NOT_SENT):
            level = "info"
            fields["admission"] = attempt.admission.value if attempt.admission else None
        case outcome.Held(why=why, error=error):
            level = "warning" if why in _HOLDS_TO_WAIT_OUT else "error"
            fields["error"] = error
    getattr(log, level)(
        "sync_attempt",
        queue_id=op.id,
        mentor_id=str(op.mentor_id),
        operation=op.operation,
        attempt=op.attempt_count + 1,
        correlation_id=op.correlation_id,
        outcome=decided.name,
        **{k: v for k, v in fields.items() if v is not None},
    )


# Holds that pass by themselves (a link, the outage's end); the others need an administrator.
_HOLDS_TO_WAIT_OUT = frozenset({outcome.Hold.UNLINKED, outcome.Hold.PROBE_FAILED})


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
