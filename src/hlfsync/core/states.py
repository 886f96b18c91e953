"""The states of a sync operation (`sync_queue.status`), named for Python code.

The truth is the SQL: the CHECKs on `sync_queue` name the states and which of them are final,
and the guarded UPDATEs in `db/sql/queue.sql` and the queueing functions are the only moves.
`tests/integration/db/test_state_machine.py` holds this module, those statements and the
drawing in `docs/state-machine.md` together. Pure: no I/O.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where an operation is; the values are the ones `sync_queue.status` may hold."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    SUPERSEDED = "superseded"


# The states `sync_queue_finished_iff_terminal` gives a finished_at: nothing leaves them.
TERMINAL: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.DEAD_LETTERED, JobState.SUPERSEDED}
)


def is_terminal(state: JobState) -> bool:
    """True when nothing more can happen to the operation."""
    return state in TERMINAL
