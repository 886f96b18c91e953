"""The sync operation's state machine: the table is the truth, and nothing else is allowed."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from hlfsync.core import states

JobState, JobEvent = states.JobState, states.JobEvent

EXPECTED = {
    (JobState.PENDING, JobEvent.CLAIM): JobState.IN_PROGRESS,
    (JobState.PENDING, JobEvent.SUPERSEDE): JobState.SUPERSEDED,
    (JobState.IN_PROGRESS, JobEvent.SUCCEED): JobState.SUCCEEDED,
    (JobState.IN_PROGRESS, JobEvent.RETRY): JobState.PENDING,
    (JobState.IN_PROGRESS, JobEvent.THROTTLE): JobState.PENDING,
    (JobState.IN_PROGRESS, JobEvent.HOLD): JobState.PENDING,
    (JobState.IN_PROGRESS, JobEvent.DEAD_LETTER): JobState.DEAD_LETTERED,
    (JobState.IN_PROGRESS, JobEvent.LEASE_EXPIRED): JobState.PENDING,
}


def test_states_are_the_stored_strings() -> None:
    """JobState carries exactly the strings CONTRACT.md names for sync_queue.status."""
    assert [s.value for s in JobState] == [
        "pending",
        "in_progress",
        "succeeded",
        "dead_lettered",
        "superseded",
    ]


def test_events_are_the_named_ones() -> None:
    """JobEvent names every event the worker, the rescuer and the outbox can cause."""
    assert {e.value for e in JobEvent} == {
        "claim",
        "succeed",
        "retry",
        "throttle",
        "hold",
        "dead_letter",
        "supersede",
        "lease_expired",
    }


@pytest.mark.parametrize(
    ("state", "event"),
    list(itertools.product(JobState, JobEvent)),
    ids=str,
)
def test_every_state_event_pair_follows_the_table(
    state: states.JobState, event: states.JobEvent
) -> None:
    """A pair in the table moves to its state; any other pair raises InvalidTransition."""
    if (state, event) in EXPECTED:
        assert states.transition(state, event) is EXPECTED[state, event]
    else:
        with pytest.raises(states.InvalidTransition) as raised:
            states.transition(state, event)
        assert (raised.value.state, raised.value.event) == (state, event)
        assert str(raised.value) == f"no transition from {state} on {event}"


def test_the_table_is_exactly_the_specified_one() -> None:
    """The transition table holds the specified moves and no others."""
    assert dict(states.TRANSITIONS) == EXPECTED


def test_the_table_cannot_be_changed_at_run_time() -> None:
    """The table is read-only, so no caller can add a move."""
    table: Any = states.TRANSITIONS
    with pytest.raises(TypeError):
        table[JobState.SUCCEEDED, JobEvent.RETRY] = JobState.PENDING


def test_terminal_states_accept_nothing() -> None:
    """Succeeded, dead-lettered and superseded are terminal, and no event leaves them."""
    assert frozenset({JobState.SUCCEEDED, JobState.DEAD_LETTERED, JobState.SUPERSEDED}) == (
        states.TERMINAL
    )
    for state in JobState:
        assert states.is_terminal(state) is (state in states.TERMINAL)
    for state, event in itertools.product(states.TERMINAL, JobEvent):
        with pytest.raises(states.InvalidTransition):
            states.transition(state, event)


def test_every_non_terminal_state_can_reach_a_terminal_one() -> None:
    """No operation can be stuck forever: each live state has a path to a terminal state."""
    reachable = set(states.TERMINAL)
    changed = True
    while changed:
        changed = False
        for (state, _), target in states.TRANSITIONS.items():
            if target in reachable and state not in reachable:
                reachable.add(state)
                changed = True
    assert reachable == set(JobState)


def test_the_diagram_draws_exactly_the_table(mermaid_edges: set[tuple[str, str, str]]) -> None:
    """docs/state-machine.md draws every move in the table as `from --> to: event`, and no other."""
    names = {s.value for s in JobState}
    drawn = {edge for edge in mermaid_edges if edge[0] in names and edge[1] in names}
    table = {(s.value, new.value, e.value) for (s, e), new in states.TRANSITIONS.items()}
    assert drawn == table
