"""API latency under row-level security: `GET /api/v1/mentors`, 50-item pages, 100,000 mentors.

    uv run python -m bench.api [--mentors 100000] [--requests 1000]

The API runs as in production, in its own process (uvicorn, its own pool); this process walks
the mentor list with an httpx load loop (closed loop: each of `conc.` walkers sends its next
request when the last one answered), following `next` from cursors spread over the whole list,
and times every page. Users: a coordinator of two chapters (the largest scope a coordinator has
in the seed), a coordinator of one chapter, an organisation administrator. A SQL-only pair
shows what RLS itself costs: the page query as the caller, and the same query as the owner (RLS
bypassed). Target: p99 < 50 ms per page. On a small machine the load generator, the API and
PostgreSQL share the cores: past saturation, higher concurrency only adds queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from bench import _common
from hlfsync.api import mint_token
from hlfsync.db.queries import q

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"  # noqa: S105 - throwaway
PAGE = 50


def _serve(url: str, ready: Any) -> None:
    """The child process: serve the API until SIGTERM, report the base URL through `ready`."""
    from hlfsync import observability, settings
    from hlfsync.api import serve

    observability.configure("warning", "json")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        conf = settings.load(database_url=url, jwt_secret=SECRET, log_level="warning")
        await serve(conf, stop, host="127.0.0.1", port=0, on_ready=ready.put)

    asyncio.run(main())


@dataclass
class Row:
    scenario: str
    concurrency: int
    latencies_ms: list[float]
    seconds: float

    def cells(self) -> list[str]:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> str:
            return f"{ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]:.1f}"

        return [self.scenario, str(self.concurrency), str(len(ordered)), pct(50), pct(95),
                pct(99), f"{ordered[-1]:.1f}", f"{len(ordered) / self.seconds:,.0f}"]  # fmt: skip


def _users(url: str) -> dict[str, tuple[uuid.UUID, int]]:
    """The users to measure and how many mentors each may see."""
    with psycopg.connect(url) as conn:
        coordinators = conn.execute(
            "SELECT cc.user_id, count(DISTINCT cm.chapter_id), count(DISTINCT cm.mentor_id)"
            " FROM coordinator_chapters cc JOIN chapter_memberships cm USING (chapter_id)"
            " GROUP BY cc.user_id ORDER BY 2 DESC, 3 DESC"
        ).fetchall()
        admin = conn.execute(
            "SELECT oa.user_id, count(*) FROM organization_admins oa"
            " JOIN peer_mentors p USING (organization_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    assert admin is not None
    single = next(c for c in coordinators if c[1] == 1)
    return {
        f"coordinator, 2 chapters ({coordinators[0][2]:,} mentors)": (coordinators[0][0],
                                                                       coordinators[0][2]),
        f"coordinator, 1 chapter ({single[2]:,} mentors)": (single[0], single[2]),
        f"org admin ({admin[1]:,} mentors)": (admin[0], admin[1]),
    }  # fmt: skip


async def _walk(
    base: str, token: str, concurrency: int, requests: int
) -> tuple[list[float], float]:
    """`concurrency` walkers follow `next` from spread-out starting cursors until `requests`."""
    from hlfsync.api import pages

    latencies: list[float] = []
    starts = [uuid.UUID(int=(i * 2**128) // concurrency) for i in range(concurrency)]
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def walker(client: httpx.AsyncClient, start: uuid.UUID) -> None:
        first = f"/api/v1/mentors?limit={PAGE}"
        url = first if start.int == 0 else f"{first}&cursor={pages.encode(str(start))}"
        while len(latencies) < requests:
            began = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
            url = response.json()["next"] or first

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        for _ in range(20):  # warm-up: connections, plans, caches
            (await client.get(f"/api/v1/mentors?limit={PAGE}", headers=headers)).raise_for_status()
        began = time.perf_counter()
        await asyncio.gather(*(walker(client, s) for s in starts))
        return latencies[:requests], time.perf_counter() - began


def _sql_only(url: str, user: uuid.UUID, requests: int, *, as_caller: bool) -> Row:
    """The page query alone, with and without row-level security, for the cost of RLS itself."""
    claims = f'{{"sub": "{user}", "role": "authenticated"}}'
    latencies: list[float] = []
    after = uuid.UUID(int=0)
    with psycopg.connect(url, autocommit=True) as conn:
        began_all = time.perf_counter()
        for _ in range(requests):
            began = time.perf_counter()
            with conn.transaction():
                if as_caller:
                    conn.execute(q("api_become_caller"), {"claims": claims})
                else:
                    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [claims])
                rows = conn.execute(q("api_mentor_page"), {"after": after, "limit": PAGE + 1})
                found = rows.fetchall()
            latencies.append((time.perf_counter() - began) * 1000)
            after = found[PAGE - 1][0] if len(found) > PAGE else uuid.UUID(int=0)
        seconds = time.perf_counter() - began_all
    label = "as the caller (RLS)" if as_caller else "as the owner (no RLS)"
    return Row(f"SQL only, coordinator, {label}", 1, latencies, seconds)


def run(mentors: int, requests: int) -> list[Row]:
    url = _common.fresh_database("bench_api", mentors=mentors)
    users = _users(url)
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=_serve, args=(url, ready), daemon=True)
    server.start()
    rows: list[Row] = []
    try:
        base = ready.get(timeout=60)
        for name, (user, _) in users.items():
            token = mint_token(SECRET, user, ttl_s=3600)
            for concurrency in (1, 4, 8) if name.startswith("coordinator, 2") else (4,):
                latencies, seconds = asyncio.run(_walk(base, token, concurrency, requests))
                rows.append(Row(f"HTTP, {name}", concurrency, latencies, seconds))
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGTERM)
        server.join(timeout=30)
    coordinator = next(iter(users.values()))[0]
    rows.append(_sql_only(url, coordinator, requests, as_caller=True))
    rows.append(_sql_only(url, coordinator, requests, as_caller=False))
    return rows


HEADER = ["scenario", "conc.", "pages", "p50 ms", "p95 ms", "p99 ms", "max ms", "pages/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mentors", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000, help="pages per scenario")
    args = parser.parse_args()
    rows = run(args.mentors, args.requests)
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADER, title=f"GET /api/v1/mentors, {PAGE} per page, {args.mentors:,} "
                  f"mentors ({_common.machine()}, {_common.stamp()})")  # fmt: skip
    for row in rows:
        table.add_row(*row.cells())
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
