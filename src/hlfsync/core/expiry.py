"""The Python side of the expiry check: what "today" is for a run, and what a run reports.

The rules themselves (days left, which reminder is due, who is paused, what a renewal restores)
live in one place, the set-based SQL of `0006_expiry.sql`, and are tested there
(`tests/integration/expiry/`). `local_date` is held to the SQL's `expiry_today` by a test.
Pure: the instant and the time zone come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The calendar date at `instant` in `zone`: 23:30 UTC on 31 March 2026 is 1 April in Oslo.

    Naive datetimes are refused: guessing their zone is how a check runs a day early or late.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"need an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(zone).date()


@dataclass(frozen=True, slots=True)
class CheckStats:
    """What one expiry check did, as the scheduler records it and the CLI prints it."""

    today: date
    reminders: Mapping[int, int] = field(default_factory=dict)
    reminder_alerts: int = 0
    paused: int = 0
    pause_alerts: int = 0
    deliveries: int = 0
    oversized_histories: int = 0

    @property
    def reminders_total(self) -> int:
        return sum(self.reminders.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: threshold keys become strings, dates ISO strings."""
        return {
            "today": self.today.isoformat(),
            "reminders": {str(t): n for t, n in sorted(self.reminders.items(), reverse=True)},
            "reminders_total": self.reminders_total,
            "reminder_alerts": self.reminder_alerts,
            "paused": self.paused,
            "pause_alerts": self.pause_alerts,
            "deliveries": self.deliveries,
            "oversized_histories": self.oversized_histories,
        }
