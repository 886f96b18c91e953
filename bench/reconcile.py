"""Reconciliation at scale: read every contact from the sandbox (page size 5,000) and compare.

    uv run python -m bench.reconcile [--sizes 10000 100000]

For each size: a fresh database with that many mentors, the sandbox holding their contacts
(1 % drifted), one run. Prints time and the peak of Python memory allocated during the run
(tracemalloc), so "memory independent of size" can be read off the table. Target: under 30 s
at 100,000, peak memory within 20 % across sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from datetime import UTC, datetime

import psycopg

from bench import _common
from hlfsync import settings
from hlfsync.db import reconcile
from hlfsync.db.pool import open_pool
from hlfsync.dynamics.factory import build_client


def _prepare(size: int) -> tuple[str, list[dict[str, object]]]:
    url = _common.fresh_database(f"bench_reconcile_{size}", mentors=size)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT dynamics_contact_id, status = 'active' FROM peer_mentors ORDER BY id"
        ).fetchall()
    contacts = [{"contactid": str(c), "listed": bool(listed)} for c, listed in rows]
    for item in contacts[::100]:  # 1 % drift
        item["listed"] = not item["listed"]
    return url, contacts


async def _run(url: str, env: dict[str, str]) -> tuple[float, int, reconcile.ReconcileReport]:
    values = {k.removeprefix("HLFSYNC_").lower(): v for k, v in env.items()}
    conf = settings.load(**values, database_url=url)
    client = build_client(conf)
    pool = await open_pool(url, max_size=2)
    await client.who_am_i()
    tracemalloc.start()
    started = time.perf_counter()
    report = await reconcile.reconcile(pool, client, now=datetime.now(UTC), dry_run=False,
                                       page_size=5000)  # fmt: skip
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await client.aclose()
    await pool.close()
    return seconds, peak, report


def run(sizes: list[int]) -> list[tuple[reconcile.ReconcileReport, float, int]]:
    """One reconcile per size: (report, seconds, peak bytes)."""
    results = []
    with _common.sandbox_process() as (env, admin):
        for size in sizes:
            url, contacts = _prepare(size)
            admin.delete_contacts()
            admin.put_contacts(contacts)
            seconds, peak, report = asyncio.run(_run(url, env))
            results.append((report, seconds, peak))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table("contacts", "pages", "diverging", "queued", "seconds", "peak MiB",
                  title=f"reconcile ({_common.machine()}, {_common.stamp()})")  # fmt: skip
    for report, seconds, peak in run(args.sizes):
        table.add_row(str(report.contacts_read), str(report.pages), str(report.diverging),
                      str(report.queued), f"{seconds:.2f}", f"{peak / 2**20:.1f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
