"""Drain rate of the sync engine: how fast a backlog of queued operations reaches Dynamics.

    uv run python bench/drain.py [--ops 10000] [--quick]

Scenarios, each on a fresh database with the backlog queued by the real outbox trigger:
- in-process client, zero latency: what the engine itself costs per operation;
- in-process client with 100 ms latency at concurrency 1, 10, 50: achieved / (c / latency);
- baseline: plain psycopg claiming one row at a time (SKIP LOCKED), same zero-latency client.
The same over real HTTPS, with worker processes and the sandbox, is `bench.sync`.
Prints one table and returns the rows for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from bench import _common
from hlfsync import services, settings
from hlfsync.core.clock import SystemClock
from hlfsync.testing import RecordingNotifier


class LatencyClient:
    """A Dynamics client that answers after `latency_s`, like a remote API would."""

    contract = "bench"
    max_batch = 1

    def __init__(self, latency_s: float, target: int) -> None:
        self.latency_s = latency_s
        self.target = target
        self.calls = 0
        self.done = asyncio.Event()

    async def apply(self, change: Any) -> None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self.calls += 1
        if self.calls >= self.target:
            self.done.set()

    async def aclose(self) -> None:
        return None


@dataclass
class Row:
    scenario: str
    ops: int
    seconds: float
    cpu_s: float
    target: float | None = None

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    def cells(self) -> list[str]:
        ratio = f"{self.rate / self.target:.2f}" if self.target else ""
        cpu_ms = self.cpu_s / self.ops * 1000
        return [self.scenario, f"{self.ops}", f"{self.seconds:.2f}", f"{self.rate:,.0f}",
                f"{cpu_ms:.2f}", ratio]  # fmt: skip


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _engine(url: str, ops: int, latency_s: float, concurrency: int) -> tuple[float, float]:
    conf = settings.load(database_url=url, worker_concurrency=concurrency, log_level="error")
    client = LatencyClient(latency_s, ops)
    built = await services.build_worker(conf, clock=SystemClock(), client=client,
                                        notifier=RecordingNotifier())  # fmt: skip
    stop = asyncio.Event()
    started, cpu0 = time.perf_counter(), _cpu()
    task = asyncio.create_task(built.worker.run(stop))
    await client.done.wait()
    elapsed, cpu = time.perf_counter() - started, _cpu() - cpu0
    stop.set()
    await task
    await built.aclose()
    return elapsed, cpu


def _baseline(url: str, ops: int) -> tuple[float, float]:
    """One row at a time, one connection, no batching: what a naive queue does."""
    started, cpu0 = time.perf_counter(), _cpu()
    done = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while done < ops:
            with conn.transaction():
                row = conn.execute(
                    "SELECT id FROM sync_queue WHERE status = 'pending' ORDER BY id"
                    " LIMIT 1 FOR UPDATE SKIP LOCKED"
                ).fetchone()
                if row is None:
                    break
                conn.execute(
                    "UPDATE sync_queue SET status = 'succeeded', finished_at = now(),"
                    " attempt_count = attempt_count + 1 WHERE id = %s",
                    [row[0]],
                )
            done += 1
    return time.perf_counter() - started, _cpu() - cpu0


def run(ops: int, quick: bool) -> list[Row]:
    rows: list[Row] = []
    url = _common.fresh_database("bench_drain_0", mentors=ops, queued=ops)
    seconds, cpu = asyncio.run(_engine(url, ops, 0.0, 50))
    rows.append(Row("engine, zero latency, c=50", ops, seconds, cpu))
    url = _common.fresh_database("bench_drain_base", mentors=ops, queued=ops)
    seconds, cpu = _baseline(url, ops)
    rows.append(Row("baseline: plain psycopg, 1 row at a time", ops, seconds, cpu))
    for concurrency in (1, 10, 50):
        latency = 0.1
        n = min(ops, 50 if quick else int(concurrency / latency * 10))
        url = _common.fresh_database(f"bench_drain_l{concurrency}", mentors=n, queued=n)
        seconds, cpu = asyncio.run(_engine(url, n, latency, concurrency))
        rows.append(Row(f"engine, 100 ms latency, c={concurrency}", n, seconds, cpu,
                        target=concurrency / latency))  # fmt: skip
    return rows


HEADER = ["scenario", "ops", "seconds", "ops/s", "CPU ms/op", "achieved/ideal"]


def main() -> None:
    from hlfsync import observability

    # Warnings and errors only: a log line per attempt is part of the product, but printing
    # 10,000 of them to a terminal measures the terminal.
    observability.configure("warning", "json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small latency runs")
    args = parser.parse_args()
    rows = run(args.ops, args.quick)
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADER, title=f"drain rate ({_common.machine()}, {_common.stamp()})")
    for row in rows:
        table.add_row(*row.cells())
    Console().print(table)


if __name__ == "__main__":
    main()
