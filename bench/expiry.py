"""The nightly expiry check over many mentors: first and second run on the same day.

    uv run python -m bench.expiry [--mentors 100000]

Certificates are spread over the past and next 90 days (`_common.fresh_database`). Scenarios:
- catch-up: every mentor active, nothing ever sent: the worst first run (~50% expired to pause
  through the outbox trigger, ~17% due a reminder), then the same day again (targets: < 3 s,
  < 1 s);
- a normal night: yesterday's check already ran, so today's first run sends only the reminders
  and pauses that fall due today; then again.
Prints one table; the figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from bench import _common
from hlfsync.db import expiry


@dataclass
class Row:
    scenario: str
    run: str
    seconds: float
    stats: dict[str, Any]
    target_s: float | None

    def cells(self) -> list[str]:
        ok = "" if self.target_s is None else ("yes" if self.seconds < self.target_s else "NO")
        target = "" if self.target_s is None else f"< {self.target_s:g} s"
        return [self.scenario, self.run, f"{self.seconds:.2f}", target, ok,
                f"{self.stats['reminders_total']:,}", f"{self.stats['paused']:,}",
                f"{self.stats['deliveries']:,}"]  # fmt: skip


def _timed(url: str, today: date) -> tuple[float, dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        stats = expiry.run_expiry_check(conn, today, "bench")
        return time.perf_counter() - started, stats


def run(mentors: int) -> list[Row]:
    today = date.today()
    rows: list[Row] = []
    url = _common.fresh_database("bench_expiry_catchup", mentors=mentors)
    for label, target in (("first", 3.0), ("second", 1.0)):
        seconds, stats = _timed(url, today)
        rows.append(Row("catch-up (all active, none sent)", label, seconds, stats, target))
    url = _common.fresh_database("bench_expiry_nightly", mentors=mentors)
    _timed(url, today - timedelta(days=1))  # yesterday's night, not measured
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    for label in ("first", "second"):
        seconds, stats = _timed(url, today)
        rows.append(Row("normal night (yesterday ran)", label, seconds, stats, None))
    return rows


HEADER = ["scenario", "run", "seconds", "target", "met", "reminders", "paused", "deliveries"]


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
