"""Certification expiry rules: days left, which reminder threshold applies, what "today" is.

The SQL in `0006_expiry.sql` applies the same rules set-based; tests check one against the other.
Pure: the instant and the time zone come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

# What org_settings.reminder_threshold_days defaults to.
DEFAULT_THRESHOLDS: tuple[int, ...] = (30, 14, 7)
# The status reasons that tie a pause to its certification, so renewal restores only those.
PAUSED_FOR_EXPIRY = "certification_expired"
RESTORED_BY_RENEWAL = "certification_renewed"


def days_left(expires_on: date, today: date) -> int:
    """Whole days until expiry: 0 on the expiry date itself, negative once expired."""
    return (expires_on - today).days


def is_expired(expires_on: date, today: date) -> bool:
    """A certification is valid through its expiry date and expired from the day after."""
    return expires_on < today


def threshold_for(days: int, thresholds: Iterable[int]) -> int | None:
    """The reminder due with `days` left: the smallest threshold not below it, if any.

    A missed night is caught up (20 days left still sends the 30-day reminder if it was never
    sent), but a later threshold replaces earlier ones (3 days left sends only the 7-day one).
    Expired certifications (negative days) get no reminder: they are paused instead.
    """
    if days < 0:
        return None
    fitting = [t for t in thresholds if t >= days]
    return min(fitting) if fitting else None


def valid_thresholds(thresholds: Iterable[int]) -> bool:
    """Mirrors the database CHECK: a non-empty set of distinct positive days."""
    values = list(thresholds)
    return bool(values) and all(t > 0 for t in values) and len(set(values)) == len(values)


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The calendar date at `instant` in `zone`: 23:30 UTC on 31 March 2026 is 1 April in Oslo.

    Naive datetimes are refused: guessing their zone is how a check runs a day early or late.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"need an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(zone).date()


def restores(new_expires_on: date, today: date) -> bool:
    """A renewal restores an expiry-paused mentor when the new date is not in the past.

    A certificate expiring today is still valid today, so today counts as not in the past.
    """
    return not is_expired(new_expires_on, today)


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
