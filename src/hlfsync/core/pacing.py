"""How many calls may be in flight once Dynamics throttles (additive increase, multiplicative
decrease, as TCP does with its window), when calls must carry full batches, and how much
background work may run while the live loop is late (the same rule on the loop's lag).

A 429 says requests are rationed. Sending as many in parallel as before only buys more 429s the
moment the pause ends, and Dataverse lengthens the penalty of clients that keep sending while
throttled. So a throttle halves the calls allowed in flight (once per pause, however many calls
of one burst come back 429), and each success gives back 1/limit, about one call per round,
up to the configured concurrency. Pure: the caller passes the time.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Dataverse's service protection: 6,000 requests per user per 5 minutes, across every caller
# of the application user (a `$batch` is one request).
WINDOW = timedelta(minutes=5)
# Requests one sync loop spends on small calls per window before it fills its batches: a
# quarter of the limit, so the live and bulk loops of two workers stay under it together.
REQUEST_BUDGET = 1500
# The live loop's lag above which background work backs off: a person's change should find the
# loop free within a few milliseconds.
YIELD_LAG_S = 0.005
# How often the background share is adjusted: the probe's recent figure spans about 100 ms.
ADJUST_S = 0.05


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


@dataclass
class RequestWindow:
    """The requests a sync loop sent over the last `WINDOW`.

    Small calls in parallel give the lowest latency, but a long backlog sent that way spends
    Dataverse's requests (shared out over 50 slots, a drain went out 17 changes a `$batch`,
    so 100,000 changes needed the window's 6,000 requests, and the limit's 429 paused every
    call, a person's too, for five minutes). Once `budget`
    requests went out within the window, calls carry full batches until the window has room
    again. Pure: the caller passes the time.
    """

    budget: int = REQUEST_BUDGET
    sent: collections.deque[datetime] = field(default_factory=collections.deque)

    def note(self, now: datetime, calls: int = 1) -> None:
        self.sent.extend([now] * calls)
        self._forget(now)

    def spent(self, now: datetime) -> bool:
        self._forget(now)
        return len(self.sent) >= self.budget

    def _forget(self, now: datetime) -> None:
        while self.sent and now - self.sent[0] >= WINDOW:
            self.sent.popleft()


@dataclass
class LagShare:
    """How many pieces of background work (the bulk lane's calls) may be in flight while the live
    loop wakes `lag_s` late: halved when it is later than `yield_lag_s`, won back one at a time
    while it is not, adjusted at most every `adjust_s`, between 1 and `ceiling`.

    Background work shares the process (and, on a small machine, the cores) with the loop that
    serves people's changes; this gives way the moment they would wait. Pure: the caller passes
    a monotonic time and the lag.
    """

    ceiling: int
    yield_lag_s: float = YIELD_LAG_S
    adjust_s: float = ADJUST_S
    limit: int = field(init=False)
    _adjusted: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.limit = self.ceiling

    def allowed(self, now: float, lag_s: float) -> int:
        if self._adjusted is None or now - self._adjusted >= self.adjust_s:
            self._adjusted = now
            if lag_s > self.yield_lag_s:
                self.limit = max(1, self.limit // 2)
            else:
                self.limit = min(self.ceiling, self.limit + 1)
        return self.limit
