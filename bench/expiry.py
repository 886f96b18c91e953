"""The nightly expiry check over many mentors: first and second run on the same day.

    uv run python -m bench.expiry [--mentors 100000]

The check runs as the worker's scheduler runs it: chunks of mentors, each committed on its
own, two at once (`tasks.expiry_check`). One database, seeded by
`_common.fresh_database` (certificates spread over the past and next
90 days, every mentor active, nothing ever sent), checked four times:
- catch-up, for yesterday: the check has never run, so about half the mentors are expired and
  active (each chunk's pauses go through the outbox trigger in one statement) and every reminder
  in reach is due: the worst first run there is; then the same day again;
- a normal night, for today: yesterday's check ran, so only today's reminders and pauses are
  due (about 1/180 of the mentors expire each day); then the same day again.
Targets: first run < 3 s, second run < 1 s. Prints one table; figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bench import _common
from hlfsync import tasks
from hlfsync.db.pool import open_pool


@dataclass
class Row:
    scenario: str
    run: str
    seconds: float
    stats: dict[str, Any]
    target_s: float | None
    # The machine's speed right after (`_common.speed_s`; after, since the probe writes WAL
    # the check would otherwise meet): a slow window shows here.
    probe_s: float

    def cells(self) -> list[str]:
        ok = "" if self.target_s is None else ("yes" if self.seconds < self.target_s else "NO")
        target = "" if self.target_s is None else f"< {self.target_s:g} s"
        return [self.scenario, self.run, f"{self.seconds:.2f}", target, ok,
                f"{self.stats['reminders_total']:,}", f"{self.stats['paused']:,}",
                f"{self.stats['deliveries']:,}", f"{self.probe_s:.3f}"]  # fmt: skip


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _timed(url: str, today: date) -> tuple[float, dict[str, Any], float]:
    """The check as the worker's scheduler runs it: chunks committed on their own, two lanes;
    with the machine's speed probe taken right after."""

    async def scheduled() -> tuple[float, dict[str, Any]]:
        pool = await open_pool(url, max_size=4)
        try:
            started = time.perf_counter()
            stats = await tasks.expiry_check(pool, today=today, actor="bench")
            return time.perf_counter() - started, stats
        finally:
            await pool.close()

    seconds, stats = asyncio.run(scheduled())
    probe = _common.speed_s()
    _progress(f"check for {today}: {seconds:.2f} s (speed probe {probe:.3f} s)")
    return seconds, stats, probe


def run(mentors: int) -> list[Row]:
    today = date.today()
    _progress(f"seeding {mentors:,} mentors")
    url = _common.fresh_database("bench_expiry", mentors=mentors)
    rows: list[Row] = []
    plan = [
        ("catch-up (never ran, all active)", today - timedelta(days=1)),
        ("normal night (yesterday ran)", today),
    ]
    for scenario, day in plan:
        for label, target in (("first", 3.0), ("second", 1.0)):
            seconds, stats, probe = _timed(url, day)
            rows.append(Row(scenario, label, seconds, stats, target, probe))
    return rows


HEADER = ["scenario", "run", "seconds", "target", "met", "reminders", "paused", "deliveries",
          "speed probe s"]  # fmt: skip


def main() -> None:
    from hlfsync import observability

    observability.configure("warning", "json")
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mentors", type=int, default=100_000)
    args = parser.parse_args()
    rows = run(args.mentors)
    from rich.console import Console
    from rich.table import Table

    title = f"expiry check, {args.mentors:,} mentors ({_common.machine()}, {_common.stamp()})"
    table = Table(*HEADER, title=title)
    for row in rows:
        table.add_row(*row.cells())
    Console().print(table)


if __name__ == "__main__":
    main()
