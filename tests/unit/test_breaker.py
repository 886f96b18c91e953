"""The circuit breaker: when it opens, who may probe, what a throttle or an auth failure does.

The breaker is pure functions over a snapshot; these tests thread one snapshot through them as
the PostgreSQL breaker threads its row (tests/integration/db/test_breaker_store.py tests that
part: the lock, the restart, the single probe among racing workers).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hlfsync import testing
from hlfsync.core import breaker

S = timedelta(seconds=1)
T0 = testing.EPOCH
CFG = breaker.BreakerConfig()
CLOSED, OPEN, HALF_OPEN = (
    breaker.CircuitState.CLOSED,
    breaker.CircuitState.OPEN,
    breaker.CircuitState.HALF_OPEN,
)
A = breaker.Admission
R = breaker.Reason
Snap = breaker.BreakerSnapshot


def fail(snap: Snap, times: int, now: datetime = T0, cfg: breaker.BreakerConfig = CFG) -> Snap:
    """`snap` after `times` transient failures at `now`."""
    for _ in range(times):
        snap = breaker.on_failure(snap, cfg, now).snapshot
    return snap


def opened(now: datetime = T0) -> Snap:
    """A default breaker tripped open at `now`."""
    return fail(Snap(), 3, now)


def probing(now: datetime = T0) -> Snap:
    """A default breaker tripped open at `now` and probing since the end of its cool-down."""
    admitted = breaker.admit(opened(now), CFG, now + 60 * S)
    assert admitted.admission is A.PROBE
    return admitted.snapshot


def admission(snap: Snap, at: datetime, cfg: breaker.BreakerConfig = CFG) -> breaker.Admission:
    return breaker.admit(snap, cfg, at).admission


def test_state_values_are_the_stored_strings() -> None:
    """The states carry exactly the strings stored in circuit_breakers.state."""
    assert [s.value for s in breaker.CircuitState] == ["closed", "open", "half_open"]


def test_opens_after_three_consecutive_failures() -> None:
    """Two failures leave the circuit closed; the third opens it, stamped with now."""
    twice = fail(Snap(), 2)
    assert breaker.on_failure(Snap(), CFG, T0).transition is None
    assert breaker.on_failure(fail(Snap(), 1), CFG, T0).transition is None
    assert twice.state is CLOSED
    assert admission(twice, T0) is A.ALLOW
    third = breaker.on_failure(twice, CFG, T0)
    assert third.transition == breaker.Transition(CLOSED, OPEN, R.FAILURE_THRESHOLD, T0)
    assert third.snapshot.opened_at == T0
    assert third.snapshot.consecutive_failures == 3


def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    step = breaker.on_success(fail(Snap(), 2), T0)
    assert step.transition is None
    assert step.snapshot.consecutive_failures == 0
    assert fail(step.snapshot, 2).state is CLOSED


def test_open_denies_until_the_cooldown_then_gives_exactly_one_probe() -> None:
    """Open denies for the cool-down; the first admit after it probes, the next is denied."""
    snap = opened()
    assert admission(snap, T0 + 59.999 * S) is A.DENY_OPEN
    assert not A.DENY_OPEN.allowed
    probe = breaker.admit(snap, CFG, T0 + 60 * S)
    assert probe.admission is A.PROBE
    assert probe.transition == breaker.Transition(OPEN, HALF_OPEN, R.COOLDOWN_ELAPSED, T0 + 60 * S)
    assert probe.snapshot.state is HALF_OPEN
    assert probe.snapshot.probe_started_at == T0 + 60 * S
    assert admission(probe.snapshot, T0 + 60 * S) is A.DENY_PROBING
    assert admission(probe.snapshot, T0 + 119 * S) is A.DENY_PROBING


def test_probe_success_closes_the_circuit() -> None:
    """A successful probe closes the circuit and clears every trace of the outage."""
    closed = breaker.on_success(probing(), T0 + 61 * S)
    assert closed.transition == breaker.Transition(
        HALF_OPEN, CLOSED, R.PROBE_SUCCEEDED, T0 + 61 * S
    )
    assert closed.snapshot == Snap()
    assert admission(closed.snapshot, T0 + 61 * S) is A.ALLOW


def test_probe_failure_reopens_with_a_fresh_cooldown() -> None:
    """A failed probe reopens the circuit and the cool-down counts from the probe's failure."""
    failed_at = T0 + 65 * S
    reopened = breaker.on_failure(probing(), CFG, failed_at)
    assert reopened.transition == breaker.Transition(HALF_OPEN, OPEN, R.PROBE_FAILED, failed_at)
    assert reopened.snapshot.opened_at == failed_at
    assert reopened.snapshot.probe_started_at is None
    assert admission(reopened.snapshot, failed_at + 59 * S) is A.DENY_OPEN
    assert admission(reopened.snapshot, failed_at + 60 * S) is A.PROBE


def test_an_expired_probe_lease_lets_a_new_probe_through() -> None:
    """A probe that never reports back stops blocking once its lease expires."""
    cfg = dataclasses.replace(CFG, probe_lease=30 * S)
    first = breaker.admit(fail(Snap(), 3, T0, cfg), cfg, T0 + 60 * S).snapshot
    assert admission(first, T0 + 89 * S, cfg) is A.DENY_PROBING
    second = breaker.admit(first, cfg, T0 + 90 * S)
    assert second.admission is A.PROBE
    assert second.transition is None  # still half-open: a new probe, no new state
    assert second.snapshot.probe_started_at == T0 + 90 * S
    assert admission(second.snapshot, T0 + 90 * S, cfg) is A.DENY_PROBING


def test_throttle_pauses_admission_without_counting_or_changing_state() -> None:
    """A 429 pauses every call until its end, counts as no failure and changes no state."""
    step = breaker.on_throttled(fail(Snap(), 1), T0 + 30 * S)
    assert step.transition is None
    assert step.snapshot.state is CLOSED
    assert step.snapshot.consecutive_failures == 1
    assert admission(step.snapshot, T0) is A.DENY_PAUSED
    assert admission(step.snapshot, T0 + 29 * S) is A.DENY_PAUSED
    assert admission(step.snapshot, T0 + 30 * S) is A.ALLOW


def test_a_shorter_throttle_does_not_shorten_a_running_pause() -> None:
    """Of two pauses the later end wins, whichever arrives last."""
    longer = breaker.on_throttled(Snap(), T0 + 30 * S).snapshot
    assert breaker.on_throttled(longer, T0 + 10 * S).snapshot.paused_until == T0 + 30 * S


def test_a_pause_outlasting_the_cooldown_delays_the_probe() -> None:
    """While paused, even an open circuit past its cool-down gives no probe."""
    snap = breaker.on_throttled(opened(), T0 + 90 * S).snapshot
    denied = breaker.admit(snap, CFG, T0 + 60 * S)
    assert (denied.admission, denied.snapshot.state) == (A.DENY_PAUSED, OPEN)
    assert admission(snap, T0 + 90 * S) is A.PROBE


def test_a_throttled_probe_gives_up_the_slot() -> None:
    """A probe answered with 429 has no verdict, so the next admit after the pause probes again."""
    paused = breaker.on_throttled(probing(), T0 + 65 * S).snapshot
    assert paused.state is HALF_OPEN
    assert admission(paused, T0 + 60 * S) is A.DENY_PAUSED
    assert admission(paused, T0 + 65 * S) is A.PROBE


def test_auth_failure_holds_the_circuit_open() -> None:
    """One auth failure opens the circuit at once and marks it held for credentials."""
    held = breaker.on_auth_failure(Snap(), T0)
    assert held.transition == breaker.Transition(CLOSED, OPEN, R.AUTH_FAILURE, T0)
    assert held.snapshot.auth_failed
    assert held.snapshot.consecutive_failures == 0
    assert admission(held.snapshot, T0) is A.DENY_OPEN


def test_auth_hold_lasts_until_a_success() -> None:
    """Probes keep testing the credentials; a failing one re-arms the hold, a success lifts it."""
    snap = breaker.on_auth_failure(Snap(), T0).snapshot
    probe = breaker.admit(snap, CFG, T0 + 60 * S)
    assert probe.admission is A.PROBE
    again = breaker.on_auth_failure(probe.snapshot, T0 + 60 * S)
    assert again.transition == breaker.Transition(HALF_OPEN, OPEN, R.AUTH_FAILURE, T0 + 60 * S)
    assert again.snapshot.opened_at == T0 + 60 * S
    probe = breaker.admit(again.snapshot, CFG, T0 + 120 * S)
    assert probe.admission is A.PROBE
    # A 503 on the probe proves nothing about the credentials.
    still = breaker.on_failure(probe.snapshot, CFG, T0 + 120 * S).snapshot
    assert still.auth_failed
    probe = breaker.admit(still, CFG, T0 + 180 * S)
    lifted = breaker.on_success(probe.snapshot, T0 + 180 * S).snapshot
    assert not lifted.auth_failed
    assert lifted.state is CLOSED


def test_auth_failure_while_open_restarts_the_cooldown() -> None:
    """An auth failure on an open circuit changes no state but holds it open from now."""
    held = breaker.on_auth_failure(opened(), T0 + 50 * S)
    assert held.transition is None
    assert held.snapshot.opened_at == T0 + 50 * S
    assert held.snapshot.auth_failed


def test_a_late_failure_while_open_does_not_restart_the_cooldown() -> None:
    """A failure reported while open (a call admitted earlier) is counted, nothing more."""
    late = breaker.on_failure(opened(), CFG, T0 + 30 * S)
    assert late.transition is None
    assert late.snapshot.opened_at == T0
    assert late.snapshot.consecutive_failures == 4


def test_a_late_success_while_open_closes() -> None:
    """A success reported while open proves Dynamics works, so the circuit closes."""
    step = breaker.on_success(opened(), T0)
    assert step.transition == breaker.Transition(OPEN, CLOSED, R.SUCCESS, T0)


def test_success_keeps_a_running_pause() -> None:
    """A success does not lift a throttle pause: the server asked for it."""
    paused = breaker.on_throttled(Snap(), T0 + 10 * S).snapshot
    assert admission(breaker.on_success(paused, T0).snapshot, T0) is A.DENY_PAUSED


@pytest.mark.parametrize(
    ("snap", "at", "until"),
    [
        (Snap(), T0, None),
        (opened(), T0 + 10 * S, T0 + 60 * S),
        (probing(), T0 + 70 * S, T0 + 120 * S),
        (breaker.on_throttled(Snap(), T0 + 5 * S).snapshot, T0, T0 + 5 * S),
        (breaker.on_throttled(Snap(), T0 + 5 * S).snapshot, T0 + 5 * S, None),  # pause over
        (breaker.on_throttled(opened(), T0 + 90 * S).snapshot, T0, T0 + 90 * S),
        (breaker.on_throttled(opened(), T0 + 9 * S).snapshot, T0, T0 + 60 * S),
        (opened(), T0 + 61 * S, T0 + 60 * S),  # cool-down over: try again at once
    ],
)
def test_blocked_until_is_when_the_latest_denial_ends(
    snap: Snap, at: datetime, until: datetime | None
) -> None:
    """Held operations wait for the pause, the cool-down and the probe's lease, whichever ends
    last; a pause already over counts for nothing, a cool-down already over means now."""
    assert breaker.blocked_until(snap, CFG, at) == until


@pytest.mark.parametrize(
    ("snap", "admitted", "closes"),
    [
        (Snap(), A.ALLOW, False),
        (fail(Snap(), 2), A.ALLOW, False),
        (opened(), A.ALLOW, True),
        (probing(), A.PROBE, True),
        (Snap(), A.PROBE, True),
    ],
)
def test_a_success_goes_through_on_success_unless_the_circuit_is_plainly_closed(
    snap: Snap, admitted: breaker.Admission, closes: bool
) -> None:
    """Only the probe's success or one on a circuit not closed can change more than the failure
    count: exactly those `success_closes` names."""
    assert breaker.success_closes(snap, admitted) is closes
    after = breaker.on_success(snap, T0).snapshot
    assert (after != dataclasses.replace(snap, consecutive_failures=0)) <= closes


def test_every_drawn_transition_can_happen() -> None:
    """Each transition in TRANSITIONS is made by some call: nothing drawn is impossible."""
    made = {
        breaker.on_failure(fail(Snap(), 2), CFG, T0).transition,
        breaker.on_auth_failure(Snap(), T0).transition,
        breaker.admit(opened(), CFG, T0 + 60 * S).transition,
        breaker.on_success(opened(), T0).transition,
        breaker.on_success(probing(), T0).transition,
        breaker.on_failure(probing(), CFG, T0).transition,
        breaker.on_auth_failure(probing(), T0).transition,
    }
    assert {(t.from_state, t.to_state, t.reason) for t in made if t} == breaker.TRANSITIONS


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
    """Any sequence of admits, outcomes, pauses and clock moves keeps every promise.

    The pure functions, threaded through one snapshot, are checked against a plain model that
    speaks strings and whole seconds, written from DESIGN.md's rules rather than from the
    implementation, and against invariants that need no model: never ALLOW while open or
    paused, one probe in flight at most, transitions drawn in TRANSITIONS and chained end to
    end, and `blocked_until` naming a time when a denial is over.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.snap = Snap()
        self.heard: list[breaker.Transition] = []
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
        self.cfg = breaker.BreakerConfig(threshold, cooldown * S, lease * S)

    # ---- rules: each drives the breaker and the model the same way ----

    @rule(seconds=st.integers(0, 100))
    def advance(self, seconds: int) -> None:
        self.now += seconds * S
        self.t += seconds

    @rule()
    def admit(self) -> None:
        before = self.snap
        got = self.step(breaker.admit(before, self.cfg, self.now))
        assert got.value == self.model_admit()
        paused = before.paused_until is not None and self.now < before.paused_until
        if got is A.ALLOW:
            assert before.state is CLOSED
            assert not paused
        if got is A.PROBE:
            assert self.unanswered_probe is None or self.t >= self.unanswered_probe + self.lease
            self.unanswered_probe = self.t
        if not got.allowed:
            assert self.snap == before
            until = breaker.blocked_until(before, self.cfg, self.now)
            assert until is not None
            assert until > self.now
            assert breaker.admit(before, self.cfg, until).admission.allowed

    @rule()
    def succeed(self) -> None:
        self.step(breaker.on_success(self.snap, self.now))
        self.mode, self.fails, self.auth = "closed", 0, False
        self.open_since = self.probe_since = self.unanswered_probe = None

    @rule()
    def fail(self) -> None:
        self.step(breaker.on_failure(self.snap, self.cfg, self.now))
        self.fails += 1
        if self.mode == "half_open" or (self.mode == "closed" and self.fails >= self.threshold):
            self.model_open()

    @rule(seconds=st.integers(0, 120))
    def throttle(self, seconds: int) -> None:
        self.step(breaker.on_throttled(self.snap, self.now + seconds * S))
        until = self.t + seconds
        self.pause_until = until if self.pause_until is None else max(self.pause_until, until)
        self.probe_since = self.unanswered_probe = None

    @rule()
    def auth_failure(self) -> None:
        self.step(breaker.on_auth_failure(self.snap, self.now))
        self.model_open()
        self.auth = True

    def step(self, result: breaker.Admitted | breaker.Step) -> Any:
        """Store the snapshot a function returned and hear its transition; the admission back."""
        self.snap = result.snapshot
        if result.transition is not None:
            self.heard.append(result.transition)
        return getattr(result, "admission", None)

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

    # ---- invariants ----

    @invariant()
    def agrees_with_the_model(self) -> None:
        snap = self.snap
        start = T0
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
        for earlier, later in zip(self.heard, self.heard[1:], strict=False):
            assert earlier.to_state is later.from_state
        if self.heard:
            assert self.heard[-1].to_state is self.snap.state


def _at(start: datetime, seconds: int | None) -> datetime | None:
    return None if seconds is None else start + seconds * S


@pytest.mark.slow
class TestBreakerAgainstAModel(BreakerMachine.TestCase):  # type: ignore[misc,name-defined]
    """The breaker against the model at 150 runs of 40 steps: CI's slow run."""

    settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class TestBreakerAgainstAModelQuickly(BreakerMachine.TestCase):  # type: ignore[misc,name-defined]
    """The same model at a tenth of the runs, in every run."""

    settings = settings(max_examples=15, stateful_step_count=40, deadline=None)
