"""Test helpers shipped with hlfsync, for its own tests and for anyone embedding it.

Nothing here is used in production code paths; nothing here does I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# A fixed, unremarkable instant, so that tests print the same timestamps on every run.
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class FakeClock:
    """A `core.clock.Clock` that stands still until a test moves it.

    Time only moves through `advance` (forward) or `set` (anywhere, to simulate a skewed or
    restarted clock). It speaks aware UTC datetimes only, as the real clock does.
    """

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = _aware_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by `by` (seconds or a timedelta) and return the new now."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"advance() only moves forward, got {step}; use set() to go back")
        self._now += step
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when`, forward or back, and return it."""
        self._now = _aware_utc(when)
        return self._now


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"FakeClock needs an aware datetime, got naive {when.isoformat()}")
    return when.astimezone(UTC)
