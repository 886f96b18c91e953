"""The life of a sync operation (`sync_queue.status`): its states and the only moves between them.

`TRANSITIONS` is the truth: the store guards each write with it, `docs/state-machine.md` draws
it, and a unit test walks every (state, event) pair. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class JobState(StrEnum):
    """Where an operation is; the values are stored in `sync_queue.status`."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    SUPERSEDED = "superseded"


class JobEvent(StrEnum):
    """What can happen to an operation."""

    CLAIM = "claim"  # a worker takes it, under a lease
    SUCCEED = "succeed"  # Dynamics now shows what the operation asked for
    RETRY = "retry"  # a transient failure with retries left: due again after a backoff
    THROTTLE = "throttle"  # Dynamics asked us to slow down: due again, no attempt spent
    HOLD = "hold"  # credentials fail: back to pending untouched, until they work
    DEAD_LETTER = "dead_letter"  # permanent, retries exhausted, or poison
    SUPERSEDE = "supersede"  # a newer operation for the same mentor replaces it
    LEASE_EXPIRED = "lease_expired"  # its worker died or stalled: someone else may claim it


TRANSITIONS: Mapping[tuple[JobState, JobEvent], JobState] = MappingProxyType(
    {
        (JobState.PENDING, JobEvent.CLAIM): JobState.IN_PROGRESS,
        (JobState.PENDING, JobEvent.SUPERSEDE): JobState.SUPERSEDED,
        (JobState.IN_PROGRESS, JobEvent.SUCCEED): JobState.SUCCEEDED,
        (JobState.IN_PROGRESS, JobEvent.RETRY): JobState.PENDING,
        (JobState.IN_PROGRESS, JobEvent.THROTTLE): JobState.PENDING,
        (JobState.IN_PROGRESS, JobEvent.HOLD): JobState.PENDING,
        (JobState.IN_PROGRESS, JobEvent.DEAD_LETTER): JobState.DEAD_LETTERED,
        (JobState.IN_PROGRESS, JobEvent.LEASE_EXPIRED): JobState.PENDING,
    }
)

# Derived, so it cannot disagree with the table: a state nothing leaves is terminal.
TERMINAL: frozenset[JobState] = frozenset(JobState) - {state for state, _ in TRANSITIONS}


class InvalidTransition(ValueError):  # noqa: N818 - reads as the rule it reports
    """The event cannot happen to an operation in that state."""

    def __init__(self, state: JobState, event: JobEvent) -> None:
        self.state = state
        self.event = event
        super().__init__(f"no transition from {state} on {event}")


def transition(state: JobState, event: JobEvent) -> JobState:
    """The state after `event`; raises InvalidTransition when the table has no such move."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransition(state, event) from None


def is_terminal(state: JobState) -> bool:
    """True when nothing more can happen to the operation."""
    return state in TERMINAL
