"""The healthy/degraded verdict behind `hlfsync status`'s exit code, one reason per problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hlfsync.core.status import Snapshot, lag_seconds, problems

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def snapshot(**changes: Any) -> Snapshot:
    base: dict[str, Any] = {
        "queue": {"succeeded": 10},
        "oldest_pending_at": None,
        "open_dead_letters": 0,
        "breakers": [{"name": "dynamics", "state": "closed", "paused_until": None}],
        "scheduled": [{"job": "expiry_check", "status": "succeeded"}],
        "credentials": [{"name": "dynamics", "ok": True}],
    }
    return Snapshot(**{**base, **changes})


def test_a_quiet_system_is_healthy() -> None:
    assert problems(snapshot(), NOW) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"open_dead_letters": 2}, "2 open dead letter(s)"),
        (
            {"oldest_pending_at": NOW - timedelta(minutes=6)},
            "oldest pending operation waited 360 s",
        ),
        ({"breakers": [{"name": "dynamics", "state": "open"}]}, "circuit dynamics is open"),
        (
            {
                "breakers": [
                    {
                        "name": "dynamics",
                        "state": "closed",
                        "paused_until": NOW + timedelta(seconds=30),
                    }
                ]
            },
            "calls to dynamics paused by throttling until 12:00:30",
        ),
        ({"credentials": [{"name": "dynamics", "ok": False}]}, "credentials for dynamics failing"),
        ({"scheduled": [{"job": "reconcile", "status": "failed"}]}, "last reconcile run failed"),
        (
            {"scheduled": [{"job": "expiry_check", "status": "abandoned"}]},
            "last expiry_check run abandoned",
        ),
        ({"pending_migrations": ["0009"]}, "1 migration(s) not applied"),
    ],
)
def test_each_problem_is_named_once(changes: dict[str, Any], reason: str) -> None:
    assert problems(snapshot(**changes), NOW) == [reason]


def test_a_recent_pending_operation_is_not_a_problem_and_lag_is_never_negative() -> None:
    assert problems(snapshot(oldest_pending_at=NOW - timedelta(seconds=30)), NOW) == []
    assert lag_seconds(snapshot(oldest_pending_at=NOW + timedelta(seconds=5)), NOW) == 0.0
