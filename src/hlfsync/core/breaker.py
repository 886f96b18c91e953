"""The circuit breaker that guards Dynamics, as pure functions over a stored snapshot.

Owns the breaker's states, its transitions and the shared throttle pause. It decides only by
comparing stored timestamps with the `now` it is given, never by a running timer, so the same
snapshot gives the same answers in any process after any restart. It stores nothing itself: the
PostgreSQL breaker (`hlfsync.db`) keeps the snapshot in `circuit_breakers` and calls these
functions inside a row lock. Nothing else decides: the worker asks `admit`, `blocked_until` and
`success_closes` rather than reading the state itself.

    closed ──N consecutive failures / auth failure──▶ open
    open ──cool-down passed, first admit──▶ half_open (that caller is the one probe)
    half_open ──probe succeeded──▶ closed          half_open ──probe failed / auth──▶ open
    open ──any success (a call admitted earlier)──▶ closed

Every function returns the new snapshot and the `Transition` it made, if the state changed, so
that the caller can audit, log or alert it:

    admit(snap, cfg, now)        -> Admitted(admission, snapshot, transition)
    on_success(snap, now)        -> Step(snapshot, transition)
    on_failure(snap, cfg, now)   -> Step(snapshot, transition)
    on_throttled(snap, until)    -> Step(snapshot, None)   # a pause never changes the state
    on_auth_failure(snap, now)   -> Step(snapshot, transition)
    blocked_until(snap, cfg, now) -> when admit may answer otherwise than a denial, if it denies
    success_closes(snap, admission) -> whether a success must go through on_success

A throttle (429) pauses every call until `paused_until` whatever the state; it is not a failure.
An auth failure holds the circuit open (`auth_failed`) until a success proves credentials work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


class CircuitState(StrEnum):
    """The breaker's state; the values are stored in `circuit_breakers.state`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    """The answer to "may I call Dynamics now?"."""

    ALLOW = "allow"  # closed and not paused
    PROBE = "probe"  # yes, as the one probe of a half-open circuit: report how it went
    DENY_OPEN = "deny_open"  # open, cool-down still running
    DENY_PAUSED = "deny_paused"  # a throttle pause is running, whatever the state
    DENY_PROBING = "deny_probing"  # half-open, and another caller's probe is in flight

    @property
    def allowed(self) -> bool:
        """True when the caller may make the call (as a normal call or as the probe)."""
        return self in {Admission.ALLOW, Admission.PROBE}


class Reason(StrEnum):
    """Why the state changed; written to the audit log with each transition."""

    FAILURE_THRESHOLD = "failure_threshold"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"
    SUCCESS = "success"
    AUTH_FAILURE = "auth_failure"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, for the audit log and alerts."""

    from_state: CircuitState
    to_state: CircuitState
    reason: Reason
    at: datetime


# Every transition the functions below can make; docs/state-machine.md draws exactly these.
TRANSITIONS: frozenset[tuple[CircuitState, CircuitState, Reason]] = frozenset(
    {
        (CircuitState.CLOSED, CircuitState.OPEN, Reason.FAILURE_THRESHOLD),
        (CircuitState.CLOSED, CircuitState.OPEN, Reason.AUTH_FAILURE),
        (CircuitState.OPEN, CircuitState.HALF_OPEN, Reason.COOLDOWN_ELAPSED),
        (CircuitState.OPEN, CircuitState.CLOSED, Reason.SUCCESS),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED, Reason.PROBE_SUCCEEDED),
        (CircuitState.HALF_OPEN, CircuitState.OPEN, Reason.PROBE_FAILED),
        (CircuitState.HALF_OPEN, CircuitState.OPEN, Reason.AUTH_FAILURE),
    }
)


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When the circuit opens, how long it stays open, and how long a probe may take."""

    failure_threshold: int = 3
    cooldown: timedelta = timedelta(seconds=60)
    # A probe that never reports back (its worker died) stops blocking after this long.
    probe_lease: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.cooldown <= timedelta(0):
            raise ValueError(f"cooldown must be > 0, got {self.cooldown}")
        if self.probe_lease <= timedelta(0):
            raise ValueError(f"probe_lease must be > 0, got {self.probe_lease}")


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Everything the breaker knows, as stored; the default is a fresh, closed breaker.

    Invariants (the table should CHECK them too): failures >= 0; open and half_open have
    `opened_at`; only half_open has `probe_started_at` (None there means "no probe in flight");
    a closed circuit is never `auth_failed`. `paused_until` may lie in the past: a stale pause
    is simply over.
    """

    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    probe_started_at: datetime | None = None
    paused_until: datetime | None = None
    auth_failed: bool = False

    def __post_init__(self) -> None:
        # Rows come back with plain strings; coercing here also rejects an unknown state.
        object.__setattr__(self, "state", CircuitState(self.state))
        if self.consecutive_failures < 0:
            raise ValueError(f"consecutive_failures must be >= 0, got {self.consecutive_failures}")
        if self.state is not CircuitState.CLOSED and self.opened_at is None:
            raise ValueError(f"state {self.state} needs opened_at")
        if self.probe_started_at is not None and self.state is not CircuitState.HALF_OPEN:
            raise ValueError(f"state {self.state} cannot have a probe in flight")
        if self.auth_failed and self.state is CircuitState.CLOSED:
            raise ValueError("state closed cannot be auth_failed")


class Admitted(NamedTuple):
    """What `admit` answers, the snapshot to store, and the transition it made, if any."""

    admission: Admission
    snapshot: BreakerSnapshot
    transition: Transition | None = None


class Step(NamedTuple):
    """The snapshot to store after an outcome, and the transition it made, if any."""

    snapshot: BreakerSnapshot
    transition: Transition | None = None


def admit(snap: BreakerSnapshot, cfg: BreakerConfig, now: datetime) -> Admitted:
    """May a call go to Dynamics at `now`? Store the returned snapshot before calling.

    Exactly one caller gets PROBE per half-open period, provided the read-decide-store runs
    under a lock (the row lock in PostgreSQL): the first admit after the cool-down, or the first
    after the previous probe returned without a verdict (throttled) or its lease expired.
    """
    if _before(now, snap.paused_until):
        return Admitted(Admission.DENY_PAUSED, snap)
    if snap.state is CircuitState.CLOSED:
        return Admitted(Admission.ALLOW, snap)
    if snap.state is CircuitState.OPEN:
        if _before(now, _cooldown_ends(snap, cfg)):
            return Admitted(Admission.DENY_OPEN, snap)
        probing = replace(snap, state=CircuitState.HALF_OPEN, probe_started_at=now)
        return Admitted(
            Admission.PROBE, probing, _moved(snap, probing, Reason.COOLDOWN_ELAPSED, now)
        )
    if _before(now, _probe_lease_ends(snap, cfg)):
        return Admitted(Admission.DENY_PROBING, snap)
    return Admitted(Admission.PROBE, replace(snap, probe_started_at=now))


def blocked_until(snap: BreakerSnapshot, cfg: BreakerConfig, now: datetime) -> datetime | None:
    """The latest of the times at which a denial of `admit` can end: the pause, the cool-down,
    the probe's lease; None when none applies. Held operations are given back until then, and
    an idle worker sleeps no longer.

    A cool-down or a lease already over is still returned (a time not after `now`): the caller
    then tries again at once.
    """
    pause = snap.paused_until
    ends = [
        end
        for end in (pause if _before(now, pause) else None, _cooldown_ends(snap, cfg),
                    _probe_lease_ends(snap, cfg))
        if end is not None
    ]  # fmt: skip
    return max(ends, default=None)


def success_closes(snap: BreakerSnapshot, admission: Admission) -> bool:
    """Whether a success must be reported through `on_success`: it was the probe, or the
    circuit is not closed. On a closed circuit `on_success` only zeroes the failure count, which
    the success's own write does (`succeed_many`, held to `on_success` by a test)."""
    return admission is Admission.PROBE or snap.state is not CircuitState.CLOSED


def _cooldown_ends(snap: BreakerSnapshot, cfg: BreakerConfig) -> datetime | None:
    # opened_at is always set when open (an invariant); the test is for the type checker.
    if snap.state is not CircuitState.OPEN or snap.opened_at is None:
        return None
    return snap.opened_at + cfg.cooldown


def _probe_lease_ends(snap: BreakerSnapshot, cfg: BreakerConfig) -> datetime | None:
    if snap.state is not CircuitState.HALF_OPEN or snap.probe_started_at is None:
        return None
    return snap.probe_started_at + cfg.probe_lease


def _before(now: datetime, end: datetime | None) -> bool:
    return end is not None and now < end


def on_success(snap: BreakerSnapshot, now: datetime) -> Step:
    """A call succeeded: close, forget failures and the auth hold; a running pause stays.

    Any success closes, even one reported while open (a call admitted before the circuit
    opened): it proves Dynamics and the credentials work now.
    """
    closed = BreakerSnapshot(paused_until=snap.paused_until)
    reason = Reason.PROBE_SUCCEEDED if snap.state is CircuitState.HALF_OPEN else Reason.SUCCESS
    return Step(closed, _moved(snap, closed, reason, now))


def on_failure(snap: BreakerSnapshot, cfg: BreakerConfig, now: datetime) -> Step:
    """A call failed transiently: count it; open at the threshold, or when the probe failed.

    A failure reported while already open (a late call) is counted but does not restart the
    cool-down: it tells us nothing the opening did not.
    """
    failures = snap.consecutive_failures + 1
    if snap.state is CircuitState.HALF_OPEN:
        reopened = _opened(snap, now, consecutive_failures=failures)
        return Step(reopened, _moved(snap, reopened, Reason.PROBE_FAILED, now))
    if snap.state is CircuitState.CLOSED and failures >= cfg.failure_threshold:
        opened = _opened(snap, now, consecutive_failures=failures)
        return Step(opened, _moved(snap, opened, Reason.FAILURE_THRESHOLD, now))
    return Step(replace(snap, consecutive_failures=failures))


def on_throttled(snap: BreakerSnapshot, until: datetime) -> Step:
    """Dynamics asked us to slow down: pause every call until `until` (the later pause wins).

    Not a failure and never a state change. A probe that was throttled has returned without a
    verdict, so it no longer holds the half-open slot: the next admit after the pause probes.
    """
    paused_until = until if snap.paused_until is None else max(snap.paused_until, until)
    return Step(replace(snap, paused_until=paused_until, probe_started_at=None))


def on_auth_failure(snap: BreakerSnapshot, now: datetime) -> Step:
    """The credentials failed: hold the circuit open, with a fresh cool-down, until a success.

    After each cool-down one probe tests the credentials again (as does the health check, which
    reports its success through `on_success`).
    """
    held = _opened(snap, now, auth_failed=True)
    return Step(held, _moved(snap, held, Reason.AUTH_FAILURE, now))


def _opened(
    snap: BreakerSnapshot,
    now: datetime,
    *,
    consecutive_failures: int | None = None,
    auth_failed: bool | None = None,
) -> BreakerSnapshot:
    return replace(
        snap,
        state=CircuitState.OPEN,
        opened_at=now,
        probe_started_at=None,
        consecutive_failures=(
            snap.consecutive_failures if consecutive_failures is None else consecutive_failures
        ),
        auth_failed=snap.auth_failed if auth_failed is None else auth_failed,
    )


def _moved(
    before: BreakerSnapshot, after: BreakerSnapshot, reason: Reason, now: datetime
) -> Transition | None:
    if before.state is after.state:
        return None
    return Transition(before.state, after.state, reason, now)
