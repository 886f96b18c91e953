"""An attempt's outcome, decided once: each thing an attempt can meet, and what it comes to."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from hlfsync import testing
from hlfsync.core import errors, outcome, retry
from hlfsync.core.breaker import Admission

NOW = testing.EPOCH
S = timedelta(seconds=1)
POLICY = retry.RetryPolicy()  # 2 s, 4 s, 8 s; the fourth failed call is the last
RESUME = NOW + 45 * S  # when the breaker lets calls through again


def decide(
    answer: BaseException | None = None,
    *,
    admission: Admission | None = Admission.ALLOW,
    attempts_before: int = 0,
    sent: bool = True,
    resume: bool = True,
) -> outcome.Outcome:
    attempt = outcome.Attempt(
        attempts_before, NOW, admission, answer, RESUME if resume else None, sent
    )
    return outcome.decide(attempt, POLICY, random.Random(0))


def test_an_answered_call_succeeds() -> None:
    """No failure from an admitted call is a success, the probe's included."""
    assert decide() == outcome.Succeeded()
    assert decide(admission=Admission.PROBE) == outcome.Succeeded()
    assert outcome.Succeeded().name == "succeeded"


def test_a_transient_failure_retries_on_the_policy_then_dead_letters() -> None:
    """A 503 spends an attempt and retries on the backoff; after the last retry it dead-letters."""
    failure = errors.Transient("down", status=503)
    first = decide(failure)
    assert first == outcome.RetryAt(NOW + 2 * S, "HTTP 503: down", spend_attempt=True)
    assert first.name == "retry_scheduled"
    assert decide(failure, attempts_before=3) == outcome.DeadLettered(
        "retries_exhausted: HTTP 503: down", spent=True
    )


def test_a_throttle_retries_after_its_pause_spending_nothing() -> None:
    """A 429 comes back after Retry-After, spends no attempt, and is named throttled."""
    throttled = decide(errors.Throttled("slow down", retry_after_s=30))
    assert throttled == outcome.RetryAt(NOW + 30 * S, "HTTP 429: slow down", spend_attempt=False)
    assert throttled.name == "throttled"


def test_a_permanent_answer_dead_letters_at_once() -> None:
    """A 400 goes to a person with requires_investigation, the call spent."""
    assert decide(errors.Permanent("bad", status=400)) == outcome.DeadLettered(
        "requires_investigation: HTTP 400: bad", spent=True
    )


@pytest.mark.parametrize(
    ("failure", "why"),
    [
        (errors.AuthFailure("refused", status=401), outcome.Hold.CREDENTIALS),
        (errors.ContractFailure("no such field", status=400), outcome.Hold.CONTRACT),
    ],
)
def test_a_fault_of_everyone_holds_until_calls_resume(
    failure: errors.Held, why: outcome.Hold
) -> None:
    """Refused credentials or a broken contract hold the operation, untouched, until the breaker
    lets calls through again; with no such time it is looked at again in a second."""
    assert decide(failure) == outcome.Held(why, RESUME, failure.summary())
    assert decide(failure, resume=False) == outcome.Held(why, NOW + S, failure.summary())
    assert why.sent


def test_a_failed_probe_holds_its_operation_instead_of_spending_it() -> None:
    """The probe's transient failure holds the operation that carried it, spending nothing;
    the same failure on an ordinary call spends an attempt."""
    failure = errors.Transient("still down", status=503)
    held = decide(failure, admission=Admission.PROBE, attempts_before=3)
    assert held == outcome.Held(
        outcome.Hold.PROBE_FAILED, RESUME, "probe failed: HTTP 503: still down"
    )
    assert held.name == "probe_failed"
    assert isinstance(decide(failure, attempts_before=3), outcome.DeadLettered)


@pytest.mark.parametrize(
    "admission", [Admission.DENY_OPEN, Admission.DENY_PAUSED, Admission.DENY_PROBING]
)
def test_a_refused_call_is_held_unsent(admission: Admission) -> None:
    """A call the breaker refused is held until calls resume, saying why, with no audit row."""
    held = decide(admission=admission)
    assert held == outcome.Held(outcome.Hold.NOT_SENT, RESUME, f"not sent: {admission.value}")
    assert held.name == "held"
    assert not outcome.Hold.NOT_SENT.sent


def test_the_rest_of_a_probing_batch_is_held_unsent() -> None:
    """Admitted as the probe but not sent (it went with the probe's batch): held, not sent."""
    assert decide(admission=Admission.PROBE, sent=False) == outcome.Held(
        outcome.Hold.NOT_SENT, RESUME, "not sent: probe"
    )


def test_an_unaddressable_mentor_is_held_for_an_hour() -> None:
    """No contact id and no key value: held an hour, `unlinked:` first, no attempt spent."""
    held = decide(errors.Unlinked("no contact id"), admission=None)
    assert held == outcome.Held(outcome.Hold.UNLINKED, NOW + timedelta(hours=1),
                                "unlinked: no contact id")  # fmt: skip
    assert held.name == "held_unlinked"
    assert not outcome.Hold.UNLINKED.sent


def test_an_unreadable_payload_dead_letters_without_spending() -> None:
    """A payload that cannot become a call goes to a person; no call was made, none spent."""
    assert decide(errors.Permanent("unreadable payload: x"), admission=None) == (
        outcome.DeadLettered("requires_investigation: permanent: unreadable payload: x",
                             spent=False)
    )  # fmt: skip


def test_an_unexpected_exception_is_poison() -> None:
    """Anything not classified (an adapter bug) dead-letters as poison, the call spent."""
    dead = decide(KeyError("contactid"))
    assert dead == outcome.DeadLettered(
        "requires_investigation: poison: KeyError: 'contactid'", spent=True
    )
    assert dead.name == "dead_lettered"


def test_an_attempt_never_sent_must_say_why() -> None:
    """Nobody asked the breaker and nothing failed: a caller's mistake, refused loudly."""
    with pytest.raises(ValueError, match="not sent cannot have met None"):
        decide(admission=None)
    with pytest.raises(ValueError, match="not sent cannot have met KeyError"):
        decide(KeyError("x"), admission=None)
