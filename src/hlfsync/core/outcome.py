"""What one attempt at an operation comes to, decided once as a value the store then writes.

Owns the outcome types and `decide`, which turns what the attempt met (the call's answer, a
refusal to send, a payload that cannot be sent) into one of them, using `core.retry` for
failed calls and the breaker's `blocked_until` for holds. Pure: the worker and break-glass
call it between the call and `OperationStore.record`; it stores, logs and sends nothing.

    Succeeded                   the listing is what the operation asked for
    RetryAt(at, error, spend)   back to pending until `at`; a throttle or a $batch part never
                                run spends no attempt
    DeadLettered(reason, spent) to a person, with a CONTRACT reason prefix
    Held(why, until, error)     back to pending untouched until `until`: nothing could be sent,
                                or the fault is everyone's (credentials, contract, an outage)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from hlfsync.core import errors, retry
from hlfsync.core.breaker import Admission

# An operation whose mentor cannot be addressed (no contact id, no alternate key value) is looked
# at again this often, spending nothing; linking the mentor wakes it at once (migration 0011).
UNLINKED_RECHECK = timedelta(hours=1)
# `last_error` of an unlinked operation starts so (`status`, the API and the dashboard read it).
UNLINKED = "unlinked"
# A hold with no breaker time to wait for is looked at again this soon.
HOLD_RETRY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Succeeded:
    """Dynamics did what the operation asked."""

    @property
    def name(self) -> str:
        return "succeeded"


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Back to pending, due at `at`; `spend_attempt` says whether this call counts."""

    at: datetime
    error: str
    spend_attempt: bool

    @property
    def name(self) -> str:
        return "retry_scheduled" if self.spend_attempt else "throttled"


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """To the dead-letter queue; `reason` starts with a CONTRACT prefix; `spent`: a call made."""

    reason: str
    spent: bool

    @property
    def name(self) -> str:
        return "dead_lettered"


class Hold(StrEnum):
    """Why an operation is held; the values are the `outcome` of its log line."""

    NOT_SENT = "held"  # the breaker said no (or break-glass gave it back): nothing was sent
    UNLINKED = "held_unlinked"  # nothing to address the contact by: nothing was sent
    PROBE_FAILED = "probe_failed"  # it carried the breaker's probe, and the outage is still on
    CREDENTIALS = "held_for_credentials"  # Dynamics refused the credentials
    CONTRACT = "held_for_contract"  # the contract is broken for everyone

    @property
    def sent(self) -> bool:
        """Whether a call was made (and so is audited)."""
        return self not in {Hold.NOT_SENT, Hold.UNLINKED}


@dataclass(frozen=True, slots=True)
class Held:
    """Back to pending untouched (no attempt spent) until `until`."""

    why: Hold
    until: datetime
    error: str

    @property
    def name(self) -> str:
        return self.why.value


Outcome: TypeAlias = Succeeded | RetryAt | DeadLettered | Held


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt at an operation met, as the worker saw it.

    `admission` is the breaker's answer (None: the payload could not become a call, so nobody
    asked); `sent` is False when the call was not made although admitted (a batch waiting for
    its probe, break-glass giving an operation back); `answer` is what preparing or making the
    call raised, None when it succeeded or was not made; `calls_resume` is the breaker's
    `blocked_until` once it has heard this answer.
    """

    attempts_before: int
    now: datetime
    admission: Admission | None = Admission.ALLOW
    answer: BaseException | None = None
    calls_resume: datetime | None = None
    sent: bool = True


def decide(attempt: Attempt, policy: retry.RetryPolicy, rng: random.Random) -> Outcome:
    """The one outcome of `attempt`:

    - a mentor that cannot be addressed (`Unlinked`) is held for `UNLINKED_RECHECK`;
    - a payload that cannot become a call is dead-lettered, no attempt spent;
    - a call not made (the breaker refused it) is held until calls resume;
    - a call that raised something other than a `SyncFailure` is poison: dead-lettered;
    - the probe meeting a transient failure is held until calls resume: the operation that
      carried it must not pay for the outage, or a long one would dead-letter mentors one
      probe at a time;
    - any other failure is what `core.retry.decide` says (a `Hold` held until calls resume).
    """
    admission, answer = attempt.admission, attempt.answer
    if admission is None or not (attempt.sent and admission.allowed):
        return _not_sent(attempt)
    if answer is None:
        return Succeeded()
    if not isinstance(answer, errors.SyncFailure):
        return DeadLettered(retry.poison(answer).reason, spent=True)
    return _failed(answer, attempt, policy, rng)


def _failed(
    failure: errors.SyncFailure, attempt: Attempt, policy: retry.RetryPolicy, rng: random.Random
) -> Outcome:
    summary = failure.summary()
    resume = attempt.calls_resume or attempt.now + HOLD_RETRY
    if isinstance(failure, errors.Transient) and attempt.admission is Admission.PROBE:
        return Held(Hold.PROBE_FAILED, resume, f"probe failed: {summary}")
    match retry.decide(policy, attempt.attempts_before, failure, attempt.now, rng):
        case retry.Retry(at=at, spend_attempt=spend):
            return RetryAt(at, summary, spend)
        case retry.DeadLetter(reason=reason):
            return DeadLettered(reason, spent=True)
        case retry.Hold():
            contract = isinstance(failure, errors.ContractFailure)
            return Held(Hold.CONTRACT if contract else Hold.CREDENTIALS, resume, summary)


def _not_sent(attempt: Attempt) -> Outcome:
    now, answer = attempt.now, attempt.answer
    if isinstance(answer, errors.Unlinked):
        return Held(Hold.UNLINKED, now + UNLINKED_RECHECK, f"{UNLINKED}: {answer.detail}")
    if isinstance(answer, errors.Permanent):
        # The payload cannot become a call: a person must fix the data; nothing was spent.
        return DeadLettered(f"{retry.REQUIRES_INVESTIGATION}: {answer.summary()}", spent=False)
    if attempt.admission is None or answer is not None:
        raise ValueError(f"an attempt not sent cannot have met {answer!r}")
    resume = attempt.calls_resume or now + HOLD_RETRY
    return Held(Hold.NOT_SENT, resume, f"not sent: {attempt.admission.value}")
