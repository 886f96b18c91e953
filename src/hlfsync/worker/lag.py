"""The event-loop lag probe: how late the worker's loop wakes a sleeper, as a Prometheus metric.

A loop held by one callback (a long parse, a blocking call, a job that never yields) delays every
live change behind it; this makes that delay visible: `hlfsync_event_loop_lag_seconds` (a
histogram) and `hlfsync_event_loop_lag_max_seconds` (the longest since start). A garbage
collection holds every thread of the process, whichever thread's allocation started it:
`hlfsync_gc_pause_seconds` times each (`watch_gc`), so a stall can be told from a collection.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import time
from collections.abc import Callable
from typing import Any

from hlfsync import metrics

# Samples the recent figure looks back over (at the default interval, about 100 ms).
RECENT = 5


class LagProbe:
    """Sleeps `interval_s` again and again and records how much later than asked it woke."""

    def __init__(self, interval_s: float = 0.02) -> None:
        if interval_s <= 0:
            raise ValueError("the probe's interval must be positive")
        self.interval_s = interval_s
        self.max_s = 0.0
        self.samples = 0
        # The longest delay among the last few samples: how busy the loop is right now. A plain
        # float, computed here: the bulk lane reads it from the background thread.
        self.recent_s = 0.0
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT)

    def record(self, lag_s: float) -> None:
        """One measurement (negative ones, from clock granularity, count as zero)."""
        lag_s = max(0.0, lag_s)
        self.samples += 1
        self._recent.append(lag_s)
        self.recent_s = max(self._recent)
        metrics.LOOP_LAG.observe(lag_s)
        if lag_s > self.max_s:
            self.max_s = lag_s
            metrics.LOOP_LAG_MAX.set(lag_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Measure until `stop` is set."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            asked = loop.time()
            await asyncio.sleep(self.interval_s)
            self.record(loop.time() - asked - self.interval_s)


def watch_gc() -> Callable[[str, dict[str, Any]], None]:
    """Time every garbage collection of this process into `hlfsync_gc_pause_seconds`; returns
    the callback (in `gc.callbacks`)."""
    started: list[float] = []

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pause = time.perf_counter() - started.pop()
            metrics.GC_PAUSE.labels(generation=str(info.get("generation", "?"))).observe(pause)

    gc.callbacks.append(timed)
    return timed
