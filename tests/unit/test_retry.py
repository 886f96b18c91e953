"""The retry policy, the backoff schedule and what each failure class means for an operation."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlfsync import testing
from hlfsync.core import errors, retry

S = timedelta(seconds=1)
PURE = settings(deadline=None, max_examples=300)


def run_operation(
    policy: retry.RetryPolicy,
    call: Callable[[int], errors.SyncFailure | None],
    clock: testing.FakeClock,
    rng: random.Random,
) -> tuple[str, int, list[timedelta]]:
    """Drive one operation the way the worker does: call, decide on failure, wait, call again.

    Returns the outcome, the calls made (what `attempt_count` stores) and the waits between them.
    """
    attempts, waits = 0, list[timedelta]()
    while True:
        failure = call(attempts + 1)
        if failure is None:
            return "succeeded", attempts + 1, waits
        decision = retry.decide(policy, attempts, failure, clock.now(), rng)
        match decision:
            case retry.Retry(at=at, spend_attempt=spend):
                attempts += 1 if spend else 0
                waits.append(at - clock.now())
                clock.set(at)
            case retry.DeadLetter(reason=reason):
                return reason, attempts + 1, waits
            case retry.Hold():
                return "held", attempts, waits


def test_default_delays_are_2_4_8_seconds_then_none(clock: testing.FakeClock) -> None:
    """With the defaults, the first three failed calls wait 2 s, 4 s and 8 s; the fourth ends it."""
    policy, now, rng = retry.RetryPolicy(), clock.now(), random.Random(0)
    delays = [retry.next_attempt(policy, n, now, rng) for n in (1, 2, 3, 4)]
    assert delays == [now + 2 * S, now + 4 * S, now + 8 * S, None]


def test_default_policy_makes_four_calls_in_all(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """An operation that always fails transiently is called 4 times, then dead-letters."""
    calls: list[datetime] = []

    def always_503(_attempt: int) -> errors.SyncFailure:
        calls.append(clock.now())
        return errors.Transient("Service Unavailable", status=503)

    start = clock.now()
    outcome, attempts, waits = run_operation(retry.RetryPolicy(), always_503, clock, rng)
    assert attempts == 4 == retry.RetryPolicy().max_attempts
    assert waits == [2 * S, 4 * S, 8 * S]
    assert calls == [start, start + 2 * S, start + 6 * S, start + 14 * S]
    assert outcome == "retries_exhausted: HTTP 503: Service Unavailable"


def test_success_on_the_second_attempt_stops_retrying(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """A call that fails once and then succeeds takes two calls and one 2 s wait."""
    outcome, attempts, waits = run_operation(
        retry.RetryPolicy(),
        lambda attempt: errors.Transient() if attempt == 1 else None,
        clock,
        rng,
    )
    assert (outcome, attempts, waits) == ("succeeded", 2, [2 * S])


def test_backoff_multiplies_and_stops_at_the_cap() -> None:
    """Each retry waits `multiplier` times longer than the last, never longer than max_delay."""
    policy = retry.RetryPolicy(
        max_retries=6, base_delay=S, multiplier=3.0, max_delay=timedelta(seconds=30)
    )
    assert [policy.backoff(n).total_seconds() for n in range(1, 7)] == [1, 3, 9, 27, 30, 30]


def test_backoff_beyond_max_retries_is_clamped_and_never_overflows() -> None:
    """Asking for a retry the policy never makes gives at most MAX_DELAY, not an OverflowError."""
    policy = retry.RetryPolicy(max_retries=3, multiplier=10.0)
    assert policy.backoff(10_000) == retry.MAX_DELAY


def test_zero_retries_means_one_call_only(clock: testing.FakeClock, rng: random.Random) -> None:
    """With max_retries=0 the first transient failure dead-letters."""
    policy = retry.RetryPolicy(max_retries=0)
    assert policy.max_attempts == 1
    assert retry.next_attempt(policy, 1, clock.now(), rng) is None


def test_from_settings_reads_plain_seconds() -> None:
    """from_settings turns the settings' float seconds into the same policy as timedeltas."""
    built = retry.RetryPolicy.from_settings(5, 0.5, 3.0, 60.0, 0.25)
    assert built == retry.RetryPolicy(
        max_retries=5,
        base_delay=timedelta(milliseconds=500),
        multiplier=3.0,
        max_delay=timedelta(seconds=60),
        jitter=0.25,
    )
    assert retry.RetryPolicy.from_settings(3, 2.0) == retry.RetryPolicy()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_retries", -1, "max_retries must be >= 0"),
        ("base_delay", timedelta(0), "base_delay must be > 0"),
        ("base_delay", -S, "base_delay must be > 0"),
        ("multiplier", 0.5, "multiplier must be a finite number >= 1"),
        ("multiplier", float("nan"), "multiplier must be a finite number >= 1"),
        ("multiplier", float("inf"), "multiplier must be a finite number >= 1"),
        ("max_delay", S, "max_delay (0:00:01) must be >= base_delay (0:00:02)"),
        ("jitter", -0.1, "jitter must be between 0 and 1"),
        ("jitter", 1.5, "jitter must be between 0 and 1"),
        ("jitter", float("nan"), "jitter must be between 0 and 1"),
    ],
)
def test_invalid_policy_values_are_rejected(field: str, value: Any, message: str) -> None:
    """Each out-of-range setting fails at construction with a message naming it."""
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(retry.RetryPolicy(), **{field: value})


def test_a_policy_that_would_wait_beyond_a_day_is_rejected() -> None:
    """Doubling from 2 s for 17 retries would wait 36 h; without max_delay that is refused."""
    with pytest.raises(
        ValueError, match="retry 17 would wait 131072 s, more than the 86400 s allowed"
    ):
        retry.RetryPolicy(max_retries=17)
    assert retry.RetryPolicy(max_retries=17, max_delay=timedelta(hours=1)).backoff(17) == (
        timedelta(hours=1)
    )


@pytest.mark.parametrize("attempts_made", [0, -1])
def test_next_attempt_needs_a_call_made(attempts_made: int, clock: testing.FakeClock) -> None:
    """next_attempt counts calls already made, so it needs at least one."""
    with pytest.raises(ValueError, match="attempts_made must be >= 1"):
        retry.next_attempt(retry.RetryPolicy(), attempts_made, clock.now(), random.Random(0))


def test_backoff_numbers_retries_from_one() -> None:
    """Retry 0 does not exist: the first call is not a retry."""
    with pytest.raises(ValueError, match="retry_number must be >= 1"):
        retry.RetryPolicy().backoff(0)


@st.composite
def policies(draw: st.DrawFn) -> retry.RetryPolicy:
    """Any valid policy; a cap is added where the uncapped schedule would pass MAX_DELAY."""
    max_retries = draw(st.integers(0, 12), label="max_retries")
    base = draw(st.timedeltas(timedelta(milliseconds=1), timedelta(minutes=5)), label="base")
    multiplier = draw(st.floats(1.0, 3.0), label="multiplier")
    max_delay = draw(st.one_of(st.none(), st.timedeltas(base, timedelta(hours=6))), label="cap")
    # Half the limit leaves room for float rounding at the boundary.
    if max_delay is None and base * multiplier ** max(max_retries - 1, 0) > retry.MAX_DELAY / 2:
        max_delay = timedelta(hours=6)
    return retry.RetryPolicy(
        max_retries=max_retries,
        base_delay=base,
        multiplier=multiplier,
        max_delay=max_delay,
        jitter=draw(st.floats(0.0, 1.0), label="jitter"),
    )


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
US = timedelta(microseconds=1)  # delays are whole microseconds, so bounds hold to within one


@PURE
@given(policy=policies(), now=moments, seed=st.integers(0, 2**32), data=st.data())
def test_jittered_delay_stays_between_the_floor_and_the_deterministic_delay(
    policy: retry.RetryPolicy, now: datetime, seed: int, data: st.DataObject
) -> None:
    """A retry lands in [now + d(1-j), now + d], d being the capped deterministic delay."""
    attempts = data.draw(st.integers(1, policy.max_retries + 2), label="attempts")
    at = retry.next_attempt(policy, attempts, now, random.Random(seed))
    if attempts > policy.max_retries:
        assert at is None
        return
    assert at is not None
    d = policy.backoff(attempts)
    assert at >= now
    assert d * (1 - policy.jitter) - US <= at - now <= d
    if policy.max_delay is not None:
        assert at - now <= policy.max_delay


@PURE
@given(policy=policies().map(lambda p: dataclasses.replace(p, jitter=0.0)))
def test_without_jitter_the_schedule_never_decreases(policy: retry.RetryPolicy) -> None:
    """Without jitter each retry waits at least as long as the one before."""
    delays = [policy.backoff(n) for n in range(1, policy.max_retries + 3)]
    assert delays == sorted(delays)
    assert all(timedelta(0) < d <= retry.MAX_DELAY for d in delays)


@PURE
@given(policy=policies(), now=moments, retry_after=st.timedeltas(-S, timedelta(hours=2)))
def test_retry_after_is_a_floor(
    policy: retry.RetryPolicy, now: datetime, retry_after: timedelta
) -> None:
    """A server's Retry-After is never undercut, and the retry is still never before now."""
    if policy.max_retries == 0:
        return
    at = retry.next_attempt(policy, 1, now, random.Random(0), retry_after=retry_after)
    assert at is not None
    assert at >= now
    assert at >= now + retry_after
    assert at <= now + max(policy.backoff(1), retry_after)


def test_retry_after_beyond_the_longest_delay_is_clamped(clock: testing.FakeClock) -> None:
    """A Retry-After of a year waits MAX_DELAY, so the arithmetic can never overflow."""
    at = retry.next_attempt(
        retry.RetryPolicy(), 1, clock.now(), random.Random(0), retry_after=timedelta(days=365)
    )
    assert at == clock.now() + retry.MAX_DELAY


def test_jitter_is_reproducible_from_the_seed(clock: testing.FakeClock) -> None:
    """The same seed gives the same jittered schedule, and different seeds spread it out."""
    policy = retry.RetryPolicy(jitter=0.5)

    def schedule(seed: int) -> datetime | None:
        return retry.next_attempt(policy, 3, clock.now(), random.Random(seed))

    assert schedule(7) == schedule(7)
    assert len({schedule(seed) for seed in range(20)}) > 1


def test_a_deterministic_policy_does_not_consume_randomness(clock: testing.FakeClock) -> None:
    """With jitter 0 the rng is left untouched, so other users of it see the same sequence."""
    rng = random.Random(3)
    retry.next_attempt(retry.RetryPolicy(), 1, clock.now(), rng)
    assert rng.random() == random.Random(3).random()


def test_transient_failure_spends_an_attempt_and_retries_on_schedule(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """A transient failure after 1 spent call retries at now + 4 s, spending the call."""
    failure = errors.Transient("gateway timeout", status=504)
    decision = retry.decide(retry.RetryPolicy(), 1, failure, clock.now(), rng)
    assert decision == retry.Retry(
        at=clock.now() + 4 * S, spend_attempt=True, reason="HTTP 504: gateway timeout"
    )


def test_transient_failure_on_the_last_call_dead_letters_as_retries_exhausted(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """The fourth failed call (3 spent before it) dead-letters with the retries_exhausted prefix."""
    decision = retry.decide(retry.RetryPolicy(), 3, errors.Transient(), clock.now(), rng)
    assert decision == retry.DeadLetter(
        "retries_exhausted: transient: " + (errors.Transient.__doc__ or "")
    )


def test_an_unclassified_sync_failure_is_treated_as_transient(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """A bare SyncFailure (kind transient) retries like a Transient."""
    decision = retry.decide(retry.RetryPolicy(), 0, errors.SyncFailure("odd"), clock.now(), rng)
    assert decision == retry.Retry(clock.now() + 2 * S, spend_attempt=True, reason="transient: odd")


def test_permanent_failure_dead_letters_at_once_for_investigation(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """A permanent failure dead-letters on the first call with requires_investigation."""
    failure = errors.Permanent("contact not found", status=404, code="0x80040217")
    decision = retry.decide(retry.RetryPolicy(), 0, failure, clock.now(), rng)
    assert decision == retry.DeadLetter(
        "requires_investigation: HTTP 404 0x80040217: contact not found"
    )
    assert decision.reason.startswith(retry.REQUIRES_INVESTIGATION)


@pytest.mark.parametrize("attempts_before", [0, 3, 10])
def test_throttled_call_spends_no_attempt_and_waits_retry_after(
    attempts_before: int, clock: testing.FakeClock, rng: random.Random
) -> None:
    """A 429 retries at now + Retry-After without spending an attempt, even with none left."""
    failure = errors.Throttled("slow down", retry_after_s=12.5)
    decision = retry.decide(retry.RetryPolicy(), attempts_before, failure, clock.now(), rng)
    assert decision == retry.Retry(
        at=clock.now() + timedelta(seconds=12.5), spend_attempt=False, reason="HTTP 429: slow down"
    )


def test_throttle_pause_is_clamped_to_the_longest_delay(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """An absurd Retry-After (infinite) pauses for MAX_DELAY instead of overflowing."""
    failure = errors.Throttled(retry_after_s=float("inf"))
    decision = retry.decide(retry.RetryPolicy(), 0, failure, clock.now(), rng)
    assert isinstance(decision, retry.Retry)
    assert decision.at == clock.now() + retry.MAX_DELAY


def test_auth_failure_holds_the_operation(clock: testing.FakeClock, rng: random.Random) -> None:
    """An auth failure holds the operation: no retry scheduled, no attempt spent, no dead letter."""
    failure = errors.AuthFailure("token request failed: invalid_client")
    decision = retry.decide(retry.RetryPolicy(), 2, failure, clock.now(), rng)
    assert decision == retry.Hold("auth: token request failed: invalid_client")


def test_decide_rejects_a_negative_attempt_count(
    clock: testing.FakeClock, rng: random.Random
) -> None:
    """attempts_before counts spent calls, so it cannot be negative."""
    with pytest.raises(ValueError, match="attempts_before must be >= 0"):
        retry.decide(retry.RetryPolicy(), -1, errors.Transient(), clock.now(), rng)


def test_poison_names_the_exception_and_its_message() -> None:
    """An unexpected exception dead-letters for investigation, named with its message."""
    decision = retry.poison(KeyError("contact_id"))
    assert decision == retry.DeadLetter("requires_investigation: poison: KeyError: 'contact_id'")


def test_poison_keeps_the_reason_to_one_short_line() -> None:
    """A long, multi-line message is folded onto one line and cut at the limit."""
    decision = retry.poison(ValueError("bad\npayload  " + "x" * 1000))
    detail = decision.reason.removeprefix("requires_investigation: poison: ValueError: ")
    assert "\n" not in decision.reason
    assert detail.startswith("bad payload xxx")
    assert len(detail) == retry.POISON_MESSAGE_LIMIT
    assert detail.endswith("…")


def test_poison_without_a_message_gives_just_the_type() -> None:
    """An exception with no message is named by its type alone."""
    assert retry.poison(RuntimeError()).reason == "requires_investigation: poison: RuntimeError"
