"""The circuit breaker: when it opens, who may probe, what a throttle or an auth failure does."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hlfsync import testing
from hlfsync.core import breaker

S = timedelta(seconds=1)
CLOSED, OPEN, HALF_OPEN = (
    breaker.CircuitState.CLOSED,
    breaker.CircuitState.OPEN,
    breaker.CircuitState.HALF_OPEN,
)
A = breaker.Admission


def make(clock: testing.FakeClock, **config: Any) -> breaker.CircuitBreaker:
    return breaker.CircuitBreaker(dataclasses.replace(breaker.BreakerConfig(), **config), clock)


def opened(clock: testing.FakeClock) -> breaker.CircuitBreaker:
    """A default breaker tripped open at the clock's current time."""
    cb = make(clock)
    for _ in range(3):
        cb.on_failure()
    return cb


def test_state_values_are_the_stored_strings() -> None:
    """The states carry exactly the strings stored in circuit_breakers.state."""
    assert [s.value for s in breaker.CircuitState] == ["closed", "open", "half_open"]


def test_opens_after_three_consecutive_failures(clock: testing.FakeClock) -> None:
    """Two failures leave the circuit closed; the third opens it, stamped with now."""
    cb = make(clock)
    assert cb.on_failure() is None
    assert cb.on_failure() is None
    assert cb.state is CLOSED
    assert cb.admit() is A.ALLOW
    transition = cb.on_failure()
    assert transition == breaker.Transition(
        CLOSED, OPEN, breaker.Reason.FAILURE_THRESHOLD, clock.now()
    )
    assert cb.snapshot.opened_at == clock.now()
    assert cb.snapshot.consecutive_failures == 3


def test_success_resets_the_failure_count(clock: testing.FakeClock) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    cb = make(clock)
    cb.on_failure()
    cb.on_failure()
    assert cb.on_success() is None
    assert cb.snapshot.consecutive_failures == 0
    cb.on_failure()
    cb.on_failure()
    assert cb.state is CLOSED


def test_open_denies_until_the_cooldown_then_gives_exactly_one_probe(
    clock: testing.FakeClock,
) -> None:
    """Open denies for the cool-down; the first admit after it probes, the next is denied."""
    cb = opened(clock)
    clock.advance(59.999)
    assert cb.admit() is A.DENY_OPEN
    assert not cb.allows()
    clock.advance(0.001)
    assert cb.admit() is A.PROBE
    assert cb.state is HALF_OPEN
    assert cb.snapshot.probe_started_at == clock.now()
    assert cb.admit() is A.DENY_PROBING
    clock.advance(59)
    assert cb.admit() is A.DENY_PROBING


def test_probe_success_closes_the_circuit(clock: testing.FakeClock) -> None:
    """A successful probe closes the circuit and clears every trace of the outage."""
    cb = opened(clock)
    clock.advance(60)
    assert cb.admit() is A.PROBE
    assert cb.on_success() == breaker.Transition(
        HALF_OPEN, CLOSED, breaker.Reason.PROBE_SUCCEEDED, clock.now()
    )
    assert cb.snapshot == breaker.BreakerSnapshot()
    assert cb.admit() is A.ALLOW


def test_probe_failure_reopens_with_a_fresh_cooldown(clock: testing.FakeClock) -> None:
    """A failed probe reopens the circuit and the cool-down counts from the probe's failure."""
    cb = opened(clock)
    clock.advance(60)
    cb.admit()
    clock.advance(5)
    assert cb.on_failure() == breaker.Transition(
        HALF_OPEN, OPEN, breaker.Reason.PROBE_FAILED, clock.now()
    )
    assert cb.snapshot.opened_at == clock.now()
    assert cb.snapshot.probe_started_at is None
    clock.advance(59)
    assert cb.admit() is A.DENY_OPEN
    clock.advance(1)
    assert cb.admit() is A.PROBE


def test_an_expired_probe_lease_lets_a_new_probe_through(clock: testing.FakeClock) -> None:
    """A probe that never reports back stops blocking once its lease expires."""
    cb = make(clock, probe_lease=30 * S)
    for _ in range(3):
        cb.on_failure()
    clock.advance(60)
    assert cb.admit() is A.PROBE
    clock.advance(29)
    assert cb.admit() is A.DENY_PROBING
    clock.advance(1)
    assert cb.admit() is A.PROBE
    assert cb.snapshot.probe_started_at == clock.now()
    assert cb.admit() is A.DENY_PROBING


def test_throttle_pauses_admission_without_counting_or_changing_state(
    clock: testing.FakeClock,
) -> None:
    """A 429 pauses every call until its end, counts as no failure and changes no state."""
    cb = make(clock)
    cb.on_failure()
    assert cb.on_throttled(clock.now() + 30 * S) is None
    assert cb.state is CLOSED
    assert cb.snapshot.consecutive_failures == 1
    assert cb.admit() is A.DENY_PAUSED
    clock.advance(29)
    assert cb.admit() is A.DENY_PAUSED
    clock.advance(1)
    assert cb.admit() is A.ALLOW


def test_a_shorter_throttle_does_not_shorten_a_running_pause(clock: testing.FakeClock) -> None:
    """Of two pauses the later end wins, whichever arrives last."""
    cb = make(clock)
    cb.on_throttled(clock.now() + 30 * S)
    cb.on_throttled(clock.now() + 10 * S)
    assert cb.snapshot.paused_until == clock.now() + 30 * S


def test_a_pause_outlasting_the_cooldown_delays_the_probe(clock: testing.FakeClock) -> None:
    """While paused, even an open circuit past its cool-down gives no probe."""
    cb = opened(clock)
    cb.on_throttled(clock.now() + 90 * S)
    clock.advance(60)
    assert cb.admit() is A.DENY_PAUSED
    assert cb.state is OPEN
    clock.advance(30)
    assert cb.admit() is A.PROBE


def test_a_throttled_probe_gives_up_the_slot(clock: testing.FakeClock) -> None:
    """A probe answered with 429 has no verdict, so the next admit after the pause probes again."""
    cb = opened(clock)
    clock.advance(60)
    assert cb.admit() is A.PROBE
    cb.on_throttled(clock.now() + 5 * S)
    assert cb.state is HALF_OPEN
    assert cb.admit() is A.DENY_PAUSED
    clock.advance(5)
    assert cb.admit() is A.PROBE


def test_auth_failure_holds_the_circuit_open(clock: testing.FakeClock) -> None:
    """One auth failure opens the circuit at once and marks it held for credentials."""
    cb = make(clock)
    assert cb.on_auth_failure() == breaker.Transition(
        CLOSED, OPEN, breaker.Reason.AUTH_FAILURE, clock.now()
    )
    assert cb.snapshot.auth_failed
    assert cb.snapshot.consecutive_failures == 0
    assert cb.admit() is A.DENY_OPEN


def test_auth_hold_lasts_until_a_success(clock: testing.FakeClock) -> None:
    """Probes keep testing the credentials; a failing one re-arms the hold, a success lifts it."""
    cb = make(clock)
    cb.on_auth_failure()
    clock.advance(60)
    assert cb.admit() is A.PROBE
    assert cb.on_auth_failure() == breaker.Transition(
        HALF_OPEN, OPEN, breaker.Reason.AUTH_FAILURE, clock.now()
    )
    assert cb.snapshot.opened_at == clock.now()
    clock.advance(60)
    assert cb.admit() is A.PROBE
    cb.on_failure()  # a 503 on the probe proves nothing about the credentials
    assert cb.snapshot.auth_failed
    clock.advance(60)
    cb.admit()
    cb.on_success()
    assert not cb.snapshot.auth_failed
    assert cb.state is CLOSED


def test_auth_failure_while_open_restarts_the_cooldown(clock: testing.FakeClock) -> None:
    """An auth failure on an open circuit changes no state but holds it open from now."""
    cb = opened(clock)
    clock.advance(50)
    assert cb.on_auth_failure() is None
    assert cb.snapshot.opened_at == clock.now()
    assert cb.snapshot.auth_failed


def test_a_late_failure_while_open_does_not_restart_the_cooldown(
    clock: testing.FakeClock,
) -> None:
    """A failure reported while open (a call admitted earlier) is counted, nothing more."""
    cb = opened(clock)
    opened_at = cb.snapshot.opened_at
    clock.advance(30)
    assert cb.on_failure() is None
    assert cb.snapshot.opened_at == opened_at
    assert cb.snapshot.consecutive_failures == 4


def test_a_late_success_while_open_closes(clock: testing.FakeClock) -> None:
    """A success reported while open proves Dynamics works, so the circuit closes."""
    cb = opened(clock)
    assert cb.on_success() == breaker.Transition(OPEN, CLOSED, breaker.Reason.SUCCESS, clock.now())


def test_success_keeps_a_running_pause(clock: testing.FakeClock) -> None:
    """A success does not lift a throttle pause: the server asked for it."""
    cb = make(clock)
    cb.on_throttled(clock.now() + 10 * S)
    cb.on_success()
    assert cb.admit() is A.DENY_PAUSED


def test_state_survives_a_new_process(clock: testing.FakeClock) -> None:
    """A breaker rebuilt from the stored snapshot makes the same decisions as the old one."""
    first = opened(clock)
    clock.advance(60)
    assert first.admit() is A.PROBE

    restarted_clock = testing.FakeClock(clock.now())
    second = breaker.CircuitBreaker(first.config, restarted_clock, snapshot=first.snapshot)
    assert second.admit() is A.DENY_PROBING
    for cb, c in ((first, clock), (second, restarted_clock)):
        cb.on_failure()
        c.advance(59)
    assert first.admit() is second.admit() is A.DENY_OPEN
    clock.advance(1)
    restarted_clock.advance(1)
    assert first.admit() is second.admit() is A.PROBE
    assert first.snapshot == second.snapshot


def test_every_transition_reaches_the_listener(clock: testing.FakeClock) -> None:
    """The listener hears each state change, admit's open -> half_open included, in order."""
    heard: list[breaker.Transition] = []
    cb = breaker.CircuitBreaker(breaker.BreakerConfig(), clock, on_transition=heard.append)
    for _ in range(3):
        cb.on_failure()
    clock.advance(60)
    cb.admit()
    cb.on_success()
    assert [(t.from_state, t.to_state, t.reason) for t in heard] == [
        (CLOSED, OPEN, breaker.Reason.FAILURE_THRESHOLD),
        (OPEN, HALF_OPEN, breaker.Reason.COOLDOWN_ELAPSED),
        (HALF_OPEN, CLOSED, breaker.Reason.PROBE_SUCCEEDED),
    ]


def test_only_one_of_many_threads_gets_the_probe(clock: testing.FakeClock) -> None:
    """Callers racing on an open circuit past its cool-down get exactly one PROBE between them."""
    cb = opened(clock)
    clock.advance(60)
    start = threading.Barrier(16)
    answers: list[breaker.Admission] = []

    def race() -> None:
        start.wait()
        answers.append(cb.admit())

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == sorted([A.PROBE] + [A.DENY_PROBING] * 15)


def test_pure_admit_leaves_a_denied_snapshot_unchanged() -> None:
    """Denials are reads: the snapshot they return is the one they were given."""
    now = testing.EPOCH
    snap = breaker.BreakerSnapshot(state=OPEN, consecutive_failures=3, opened_at=now)
    admitted = breaker.admit(snap, breaker.BreakerConfig(), now + S)
    assert admitted == breaker.Admitted(A.DENY_OPEN, snap, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("failure_threshold", 0, "failure_threshold must be >= 1"),
        ("cooldown", timedelta(0), "cooldown must be > 0"),
        ("probe_lease", -S, "probe_lease must be > 0"),
    ],
)
def test_invalid_config_is_rejected(field: str, value: Any, message: str) -> None:
    """Each out-of-range breaker setting fails at construction with a message naming it."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(breaker.BreakerConfig(), **{field: value})


def test_circuit_breaker_wants_a_validated_config(clock: testing.FakeClock) -> None:
    """A CircuitBreaker is built from a BreakerConfig, never from loose values."""
    loose: Any = {"failure_threshold": 3}
    with pytest.raises(TypeError, match="config must be a BreakerConfig, got dict"):
        breaker.CircuitBreaker(loose, clock)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"consecutive_failures": -1}, "consecutive_failures must be >= 0"),
        ({"state": OPEN}, "state open needs opened_at"),
        ({"state": HALF_OPEN}, "state half_open needs opened_at"),
        ({"probe_started_at": testing.EPOCH}, "state closed cannot have a probe in flight"),
        ({"auth_failed": True}, "state closed cannot be auth_failed"),
        ({"state": "ajar"}, "'ajar' is not a valid CircuitState"),
    ],
)
def test_impossible_snapshots_are_rejected(fields: dict[str, Any], message: str) -> None:
    """A snapshot that breaks an invariant (say, a corrupted row) fails loudly when built."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(breaker.BreakerSnapshot(), **fields)


def test_a_snapshot_accepts_the_state_as_stored() -> None:
    """A row's plain string state becomes a CircuitState."""
    stored: Any = "open"
    snap = breaker.BreakerSnapshot(state=stored, opened_at=testing.EPOCH)
    assert snap.state is OPEN


def test_the_diagram_draws_exactly_the_transitions(
    mermaid_edges: set[tuple[str, str, str]],
) -> None:
    """docs/state-machine.md draws every breaker transition as `from --> to: reason`, no other."""
    names = {s.value for s in breaker.CircuitState}
    drawn = {edge for edge in mermaid_edges if edge[0] in names and edge[1] in names}
    assert drawn == {(f.value, t.value, r.value) for f, t, r in breaker.TRANSITIONS}


class BreakerMachine(RuleBasedStateMachine):
    """Any sequence of admits, outcomes, pauses, restarts and clock moves keeps every promise.

    The breaker is checked against a plain model that speaks strings and whole seconds, written
    from DESIGN.md's rules rather than from the implementation, and against invariants that need
    no model: never ALLOW while open or paused, one probe in flight at most, transitions drawn
    in TRANSITIONS and chained end to end.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = testing.FakeClock()
        self.heard: list[breaker.Transition] = []
        self.reported: list[breaker.Transition] = []
        # The model.
        self.t = 0
        self.mode = "closed"
        self.fails = 0
        self.open_since: int | None = None
        self.probe_since: int | None = None
        self.pause_until: int | None = None
        self.auth = False
        # Independent bookkeeping: the probe the breaker handed out and nobody has answered.
        self.unanswered_probe: int | None = None

    @initialize(threshold=st.integers(1, 4), cooldown=st.integers(1, 90), lease=st.integers(1, 90))
    def configure(self, threshold: int, cooldown: int, lease: int) -> None:
        self.threshold, self.cooldown, self.lease = threshold, cooldown, lease
        config = breaker.BreakerConfig(threshold, cooldown * S, lease * S)
        self.cb = breaker.CircuitBreaker(config, self.clock, on_transition=self.heard.append)

    # ---- rules: each drives the breaker and the model the same way ----

    @rule(seconds=st.integers(0, 100))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.t += seconds

    @rule()
    def admit(self) -> None:
        before = self.cb.snapshot
        got = self.cb.admit()
        assert got.value == self.model_admit()
        paused = before.paused_until is not None and self.clock.now() < before.paused_until
        if got is A.ALLOW:
            assert before.state is CLOSED
            assert not paused
        if got is A.PROBE:
            assert self.unanswered_probe is None or self.t >= self.unanswered_probe + self.lease
            self.unanswered_probe = self.t
        if not got.allowed:
            assert self.cb.snapshot == before

    @rule()
    def succeed(self) -> None:
        self.record(self.cb.on_success())
        self.mode, self.fails, self.auth = "closed", 0, False
        self.open_since = self.probe_since = self.unanswered_probe = None

    @rule()
    def fail(self) -> None:
        self.record(self.cb.on_failure())
        self.fails += 1
        if self.mode == "half_open" or (self.mode == "closed" and self.fails >= self.threshold):
            self.model_open()

    @rule(seconds=st.integers(0, 120))
    def throttle(self, seconds: int) -> None:
        self.record(self.cb.on_throttled(self.clock.now() + seconds * S))
        until = self.t + seconds
        self.pause_until = until if self.pause_until is None else max(self.pause_until, until)
        self.probe_since = self.unanswered_probe = None

    @rule()
    def auth_failure(self) -> None:
        self.record(self.cb.on_auth_failure())
        self.model_open()
        self.auth = True

    @rule()
    def restart(self) -> None:
        """A new process: only the stored snapshot carries over."""
        self.cb = breaker.CircuitBreaker(
            self.cb.config, self.clock, self.cb.snapshot, on_transition=self.heard.append
        )

    # ---- the model ----

    def model_admit(self) -> str:
        t = self.t
        if self.pause_until is not None and t < self.pause_until:
            return "deny_paused"
        if self.mode == "closed":
            return "allow"
        if (
            self.mode == "open"
            and self.open_since is not None
            and t < self.open_since + self.cooldown
        ):
            return "deny_open"
        if (
            self.mode == "half_open"
            and self.probe_since is not None
            and t < self.probe_since + self.lease
        ):
            return "deny_probing"
        self.mode, self.probe_since = "half_open", t
        return "probe"

    def model_open(self) -> None:
        self.mode, self.open_since = "open", self.t
        self.probe_since = self.unanswered_probe = None

    def record(self, transition: breaker.Transition | None) -> None:
        if transition is not None:
            self.reported.append(transition)

    # ---- invariants ----

    @invariant()
    def agrees_with_the_model(self) -> None:
        snap = self.cb.snapshot
        start = testing.EPOCH
        assert snap.state.value == self.mode
        assert snap.consecutive_failures == self.fails
        assert snap.auth_failed is self.auth
        assert snap.opened_at == _at(start, self.open_since)
        assert snap.probe_started_at == _at(start, self.probe_since)
        assert snap.paused_until == _at(start, self.pause_until)

    @invariant()
    def transitions_are_drawn_and_chained(self) -> None:
        for t in self.heard:
            assert (t.from_state, t.to_state, t.reason) in breaker.TRANSITIONS
        assert set(self.reported) <= set(self.heard)
        for earlier, later in zip(self.heard, self.heard[1:], strict=False):
            assert earlier.to_state is later.from_state
        if self.heard:
            assert self.heard[-1].to_state is self.cb.state


def _at(start: datetime, seconds: int | None) -> datetime | None:
    return None if seconds is None else start + seconds * S


@pytest.mark.slow
class TestBreakerAgainstAModel(BreakerMachine.TestCase):  # type: ignore[misc,name-defined]
    """The breaker against the model at 150 runs of 40 steps: CI's slow run."""

    settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class TestBreakerAgainstAModelQuickly(BreakerMachine.TestCase):  # type: ignore[misc,name-defined]
    """The same model at a tenth of the runs, in every run."""

    settings = settings(max_examples=15, stateful_step_count=40, deadline=None)
