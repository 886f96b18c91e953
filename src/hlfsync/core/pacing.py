"""How many calls may be in flight once Dynamics throttles: additive increase, multiplicative
decrease, as TCP does with its window.

A 429 says requests are rationed. Sending as many in parallel as before only buys more 429s the
moment the pause ends, and Dataverse lengthens the penalty of clients that keep sending while
throttled. So a throttle halves the calls allowed in flight (once per pause, however many calls
of one burst come back 429), and each success gives back 1/limit, about one call per round,
up to the configured concurrency. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class CallLimit:
    """The calls allowed in flight, between 1 and `ceiling`."""

    ceiling: int
    limit: float = field(init=False)
    pause_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.limit = float(self.ceiling)

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    def on_throttle(self, now: datetime, until: datetime) -> None:
        """A call came back 429 at `now`, paused until `until`."""
        if self.pause_until is not None and now < self.pause_until:
            # Another call of the burst the current pause answered: the same lesson.
            self.pause_until = max(self.pause_until, until)
            return
        self.pause_until = until
        self.limit = max(1.0, self.limit / 2)

    def on_success(self) -> None:
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
