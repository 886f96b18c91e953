"""What a failed call means for its operation: when to try again, or why to stop.

Owns the retry policy, the backoff arithmetic and `decide`, the one place a classified failure
becomes a decision. Pure: time comes in as `now`, randomness as an injected `random.Random`; this
module stores nothing, sleeps never, and knows no table, HTTP status or logger.

Backoff: retry `n` (the n-th call after the first) waits `base_delay * multiplier**(n-1)`, capped
by `max_delay`; with the defaults 2 s, 4 s, 8 s, and the fourth failed call is the last.

Jitter is subtractive: with `jitter = j` the delay is drawn uniformly from `[d*(1-j), d]`, where
`d` is the deterministic delay above. `j = 0.5` is the classic "equal jitter", `j = 1` "full
jitter". The draw never exceeds `d`, so `max_delay` stays a true upper bound and jitter can only
make a retry earlier; it spreads out operations that failed together (one outage, many mentors).
The draw is in whole microseconds (`rng.randint`), so both bounds hold exactly, with no float
rounding past either end.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeAlias

from hlfsync.core import errors

# The longest delay any policy may produce. Longer than a day, a "retry" is really an outage that
# needs a person; refusing such a policy at start beats a mentor listing that is wrong for a week.
MAX_DELAY = timedelta(days=1)

# The prefixes CONTRACT.md promises for `dead_letter_queue.failure_reason`.
RETRIES_EXHAUSTED = "retries_exhausted"
REQUIRES_INVESTIGATION = "requires_investigation"

# An exception message quoted in a poison reason is cut here: the reason is one line in a table.
POISON_MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry a transient failure, and how long to wait before each retry."""

    max_retries: int = 3
    base_delay: timedelta = timedelta(seconds=2)
    multiplier: float = 2.0
    max_delay: timedelta | None = None
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base_delay <= timedelta(0):
            raise ValueError(f"base_delay must be > 0, got {self.base_delay}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"multiplier must be a finite number >= 1, got {self.multiplier}")
        if self.max_delay is not None and self.max_delay < self.base_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be >= base_delay ({self.base_delay})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")
        longest_s = self._capped_seconds(self.max_retries) if self.max_retries else 0.0
        if longest_s > MAX_DELAY.total_seconds():
            raise ValueError(
                f"retry {self.max_retries} would wait {longest_s:.6g} s, more than the "
                f"{MAX_DELAY.total_seconds():.6g} s allowed: lower max_retries or multiplier, "
                "or set max_delay"
            )

    @classmethod
    def from_settings(
        cls,
        max_retries: int,
        base_delay_s: float,
        multiplier: float = 2.0,
        max_delay_s: float | None = None,
        jitter: float = 0.0,
    ) -> RetryPolicy:
        """Build a policy from plain numbers, as settings hold them (seconds as floats)."""
        return cls(
            max_retries=max_retries,
            base_delay=timedelta(seconds=base_delay_s),
            multiplier=multiplier,
            max_delay=None if max_delay_s is None else timedelta(seconds=max_delay_s),
            jitter=jitter,
        )

    @property
    def max_attempts(self) -> int:
        """Calls made in all when every retry is spent: the first one plus the retries."""
        return self.max_retries + 1

    def backoff(self, retry_number: int) -> timedelta:
        """The deterministic wait before retry `retry_number` (1-based), without jitter.

        Non-decreasing in `retry_number`; beyond `max_retries` it is clamped at `MAX_DELAY` so
        that it never overflows (the policy itself never asks for those retries).
        """
        if retry_number < 1:
            raise ValueError(f"retry_number must be >= 1, got {retry_number}")
        seconds = min(self._capped_seconds(retry_number), MAX_DELAY.total_seconds())
        return timedelta(seconds=seconds)

    def _capped_seconds(self, retry_number: int) -> float:
        try:
            seconds = self.base_delay.total_seconds() * self.multiplier ** (retry_number - 1)
        except OverflowError:
            seconds = math.inf
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay.total_seconds())
        return seconds


def next_attempt(
    policy: RetryPolicy,
    attempts_made: int,
    now: datetime,
    rng: random.Random,
    retry_after: timedelta | None = None,
) -> datetime | None:
    """When to call again after `attempts_made` calls that all failed transiently.

    None when the retries are spent (`attempts_made > max_retries`): the operation dead-letters.
    `retry_after` (a server's `Retry-After`) is a floor: never earlier than `now + retry_after`,
    even when that is later than the policy's cap (though never more than `MAX_DELAY` away).
    The result is never before `now`.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
    if attempts_made > policy.max_retries:
        return None
    delay = _jittered(policy.backoff(attempts_made), policy.jitter, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY))
    return now + delay


def _jittered(delay: timedelta, jitter: float, rng: random.Random) -> timedelta:
    if jitter == 0:
        return delay  # leave the rng untouched: a deterministic policy consumes no randomness
    high = delay // timedelta(microseconds=1)
    low = high - math.floor(high * jitter)
    return timedelta(microseconds=rng.randint(low, high))


@dataclass(frozen=True, slots=True)
class Retry:
    """Put the operation back to pending, due at `at`; `spend_attempt` says if this call counts."""

    at: datetime
    spend_attempt: bool
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Move the operation to the dead-letter queue; `reason` starts with a CONTRACT prefix."""

    reason: str


@dataclass(frozen=True, slots=True)
class Hold:
    """Leave the operation pending and untouched (no attempt spent) until credentials work."""

    reason: str


Decision: TypeAlias = Retry | DeadLetter | Hold


def decide(
    policy: RetryPolicy,
    attempts_before: int,
    failure: errors.SyncFailure,
    now: datetime,
    rng: random.Random,
) -> Decision:
    """What `failure`, met by the call after `attempts_before` spent calls, means for the operation.

    - Transient (and an unclassified SyncFailure): the call is spent; retry on the policy's
      schedule, never sooner than the answer's `Retry-After`, or dead-letter as
      `retries_exhausted` when it has run out.
    - NotRun (a `$batch` part Dynamics never ran): retry at once (or after `Retry-After`),
      spending nothing: no call was made for it.
    - Throttled: retry at `now + retry_after_s` (at most `MAX_DELAY`), spending nothing: a
      throttled call was refused, not failed.
    - Permanent: dead-letter as `requires_investigation` at once; retrying cannot help.
    - Held (AuthFailure, ContractFailure): hold; the fault is everyone's, not the operation's.
    """
    if attempts_before < 0:
        raise ValueError(f"attempts_before must be >= 0, got {attempts_before}")
    summary = failure.summary()
    match failure:
        case errors.Throttled():
            pause = timedelta(seconds=min(failure.retry_after_s, MAX_DELAY.total_seconds()))
            return Retry(at=now + pause, spend_attempt=False, reason=summary)
        case errors.NotRun():
            wait = timedelta(seconds=min(failure.retry_after_s or 0.0, MAX_DELAY.total_seconds()))
            return Retry(at=now + wait, spend_attempt=False, reason=summary)
        case errors.Permanent():
            return DeadLetter(f"{REQUIRES_INVESTIGATION}: {summary}")
        case errors.Held():
            return Hold(summary)
        case _:
            floor = getattr(failure, "retry_after_s", None)
            retry_after = None if floor is None else timedelta(seconds=floor)
            at = next_attempt(policy, attempts_before + 1, now, rng, retry_after)
            if at is None:
                return DeadLetter(f"{RETRIES_EXHAUSTED}: {summary}")
            return Retry(at=at, spend_attempt=True, reason=summary)


def poison(exc: BaseException) -> DeadLetter:
    """Dead-letter an operation that met an unexpected exception or an unreadable payload.

    An exception that is not a SyncFailure is a bug or bad data, not weather: retrying it would
    only repeat it, so it goes straight to a person, named and quoted on one line.
    """
    message = " ".join(str(exc).split())
    if len(message) > POISON_MESSAGE_LIMIT:
        message = message[: POISON_MESSAGE_LIMIT - 1] + "…"
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return DeadLetter(f"{REQUIRES_INVESTIGATION}: poison: {detail}")
