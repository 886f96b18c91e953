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

    uv run python -m bench.api --only dashboard [--requests 300]

The dashboard's mentor page (`/dashboard/mentors`, signed in with the session cookie) with each
filter and search, walked one page at a time by following "Next page", and the overview (counts
and the 24-hour chart), on a database made to look lived-in: the seed's status mix, every
contact confirmed by a reconciliation, 1 % out of step, 0.5 % pending, 0.3 % dead-lettered and
a day of calls in the audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import multiprocessing
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import _common
from hlfsync.api import mint_token, signin
from hlfsync.db.queries import q

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"  # noqa: S105 - throwaway
PAGE = 50


def _serve(url: str, ready: Any) -> None:
    """The child process: serve the API until SIGTERM, report the base URL through `ready`."""
    from hlfsync import observability, settings
    from hlfsync.api import serve

    # As deployed (info, JSON), into nothing: the figures are the client's, not the lines.
    observability.configure("info", "json", Path(os.devnull).open("w"))  # noqa: SIM115

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        conf = settings.load(database_url=url, jwt_secret=SECRET)
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
                params = {"after": after, "limit": PAGE + 1, "status": None, "chapter": None,
                          "pattern": None}  # fmt: skip
                rows = conn.execute(q("api_mentor_page"), params)
                found = rows.fetchall()
            latencies.append((time.perf_counter() - began) * 1000)
            after = found[PAGE - 1][0] if len(found) > PAGE else uuid.UUID(int=0)
        seconds = time.perf_counter() - began_all
    label = "as the caller (RLS)" if as_caller else "as the owner (no RLS)"
    return Row(f"SQL only, coordinator, {label}", 1, latencies, seconds)


def _lived_in(url: str) -> None:
    """Statuses, confirmations, operations, dead letters and a day of calls, set-based."""
    with psycopg.connect(url, autocommit=True) as conn:
        # The seed's mix (fresh_database made everyone active): ~45 % paused, ~3 % inactive,
        # ~1 % without a contact, and a reconciliation's confirmations. Triggers off (superuser:
        # the embedded server): these are the state to measure, not changes to sync; a DELETE
        # of the ops they would queue costs minutes (the self-referencing superseded_by key).
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE peer_mentors SET status = CASE WHEN abs(hashtext(id::text)) % 100 < 45"
            " THEN 'paused' ELSE 'inactive' END"
            " WHERE abs(hashtext(id::text)) % 100 < 48"
        )
        conn.execute(
            "UPDATE peer_mentors SET dynamics_contact_id = NULL"
            " WHERE abs(hashtext(id::text || 'c')) % 100 = 0"
        )
        conn.execute(
            "UPDATE listing_confirmations c SET should_list = p.status = 'active',"
            " listed = CASE WHEN p.dynamics_contact_id IS NOT NULL THEN p.status = 'active' END,"
            " confirmed_at = CASE WHEN p.dynamics_contact_id IS NOT NULL"
            "  THEN now() - interval '20 hours' END,"
            " confirmed_by = CASE WHEN p.dynamics_contact_id IS NOT NULL THEN 'reconcile' END"
            " FROM peer_mentors p WHERE p.id = c.mentor_id"
        )
        conn.execute(
            "UPDATE listing_confirmations SET listed = NOT listed,"
            " differs_since = now() - interval '3 hours'"
            " WHERE listed IS NOT NULL AND abs(hashtext(mentor_id::text || 'o')) % 100 = 0"
        )
        conn.execute("RESET session_replication_role")
        # A day of successful calls, each with its operation (for the lag).
        conn.execute(
            "WITH picked AS (SELECT id, status FROM peer_mentors"
            "  WHERE dynamics_contact_id IS NOT NULL AND abs(hashtext(id::text || 's')) % 5 = 0),"
            " ops AS (INSERT INTO sync_queue (mentor_id, operation, payload_json, status,"
            "  created_at, updated_at, finished_at, attempt_count)"
            "  SELECT id, CASE WHEN status = 'active' THEN 'restore' ELSE 'remove' END, '{}',"
            "  'succeeded', t - interval '0.05 s', t, t, 1"
            "  FROM (SELECT id, status, now() - random() * interval '24 hours' AS t FROM picked) x"
            "  RETURNING id, mentor_id, finished_at)"
            " INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, details)"
            " SELECT finished_at, mentor_id, id, 'sync_succeeded', '{}' FROM ops"
        )
        conn.execute(
            "INSERT INTO audit_log (occurred_at, mentor_id, event_type, details)"
            " SELECT now() - random() * interval '24 hours', id, 'sync_retry_scheduled', '{}'"
            " FROM peer_mentors WHERE abs(hashtext(id::text || 'r')) % 50 = 0"
        )
        conn.execute(
            "SELECT enqueue_sync(ARRAY(SELECT id FROM peer_mentors"
            " WHERE abs(hashtext(id::text || 'p')) % 1000 < 8 ORDER BY id), 'force', 0, 'bench')"
        )
        letters = conn.execute(
            "SELECT sync_queue_id FROM enqueue_sync(ARRAY(SELECT id FROM peer_mentors"
            " WHERE abs(hashtext(id::text || 'd')) % 1000 < 3 ORDER BY id), 'force', 0, 'bench')"
        ).fetchall()
        ids = [row[0] for row in letters]
        conn.execute(
            "UPDATE sync_queue SET status = 'dead_lettered', finished_at = now(),"
            " attempt_count = 4 WHERE id = ANY(%s)", [ids],
        )  # fmt: skip
        conn.execute(
            "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type,"
            " payload_json, failure_reason, attempt_count)"
            " SELECT id, mentor_id, operation, payload_json, 'retries_exhausted: HTTP 503', 4"
            " FROM sync_queue WHERE id = ANY(%s)", [ids],
        )  # fmt: skip
        conn.execute(
            "INSERT INTO audit_log (occurred_at, mentor_id, sync_queue_id, event_type, details)"
            " SELECT now() - random() * interval '24 hours', mentor_id, id, 'dead_lettered', '{}'"
            " FROM sync_queue WHERE id = ANY(%s)", [ids],
        )  # fmt: skip
        conn.execute("VACUUM ANALYZE")


def _dashboard_cases(url: str, user: uuid.UUID) -> list[tuple[str, str]]:
    """(label, path) of each filter and search measured, for `user`."""
    from hlfsync.db import seed

    with psycopg.connect(url) as conn:
        chapter = conn.execute(
            "SELECT chapter_id FROM coordinator_chapters WHERE user_id = %s LIMIT 1", [user]
        ).fetchone()
        named = conn.execute("SELECT full_name FROM peer_mentors ORDER BY id LIMIT 1").fetchone()
    assert chapter is not None
    assert named is not None
    base = "/dashboard/mentors"
    cases = [("no filter", base)]
    cases += [(f"status {s}", f"{base}?status={s}") for s in ("paused", "inactive")]
    cases += [
        (f"verdict {v}", f"{base}?verdict={v}")
        for v in ("in_step", "out_of_step", "pending", "dead_lettered", "unlinked", "unconfirmed")
    ]
    cases += [
        ("one chapter", f"{base}?chapter={chapter[0]}"),
        (f"search {seed.FIRST_NAMES[0]!r}", f"{base}?q={seed.FIRST_NAMES[0]}"),
        (f"search {named[0]!r}", f"{base}?q={named[0].replace(' ', '+')}"),
        ("search 'an' (2 letters)", f"{base}?q=an"),
        ("out of step in one chapter", f"{base}?verdict=out_of_step&chapter={chapter[0]}"),
        ("paused + in step + search 'sen'", f"{base}?status=paused&verdict=in_step&q=sen"),
        ("overview (counts + 24 h chart)", "/dashboard"),
    ]
    return cases


_NEXT = re.compile(r'href="(/dashboard/mentors\?[^"]+)">Next page')


async def _dashboard_walk(base: str, code: str, path: str, requests: int) -> Row:
    """One page at a time: sign in with a one-time code, then follow "Next page" (or start
    over) `requests` times."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        signed_in = await client.get(f"/dashboard/login?code={code}")
        assert signed_in.status_code == 303, signed_in.text
        for _ in range(5):
            (await client.get(path)).raise_for_status()
        url = path
        began_all = time.perf_counter()
        while len(latencies) < requests:
            began = time.perf_counter()
            response = await client.get(url)
            latencies.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
            found = _NEXT.search(response.text)
            url = html.unescape(found.group(1)) if found else path
        return Row("", 1, latencies, time.perf_counter() - began_all)


def run_dashboard(url: str, base: str, users: dict[str, tuple[uuid.UUID, int]],
                  requests: int, only_cases: str = "") -> list[Row]:  # fmt: skip
    """Each filter for the two-chapter coordinator; a few for the administrator."""
    rows: list[Row] = []
    for index, (name, (user, _)) in enumerate(users.items()):
        if index == 1:  # the one-chapter coordinator adds nothing new here
            continue
        cases = _dashboard_cases(url, users[next(iter(users))][0])
        if index == 2:  # the administrator: the base walk, a small set, a search, the overview
            cases = [cases[i] for i in (0, 4, 10, 15)]
        wanted = [w for w in only_cases.split(",") if w]
        for label, path in cases:
            if wanted and not any(w in label for w in wanted):
                continue
            with psycopg.connect(url, autocommit=True) as conn:
                code = signin.issue(conn, user, ttl_s=600)
            row = asyncio.run(_dashboard_walk(base, code, path, requests))
            row.scenario = f"dashboard, {name}, {label}"
            rows.append(row)
    return rows


def run(mentors: int, requests: int, only: str = "all", cases: str = "") -> list[Row]:
    url = _common.fresh_database("bench_api", mentors=mentors)
    if only in {"all", "dashboard"}:
        _lived_in(url)
    users = _users(url)
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=_serve, args=(url, ready), daemon=True)
    server.start()
    rows: list[Row] = []
    try:
        base = ready.get(timeout=60)
        if only in {"all", "dashboard"}:
            rows += run_dashboard(url, base, users, requests, cases)
        for name, (user, _) in users.items() if only in {"all", "api"} else ():
            token = mint_token(SECRET, user, ttl_s=3600)
            for concurrency in (1, 4, 8) if name.startswith("coordinator, 2") else (4,):
                latencies, seconds = asyncio.run(_walk(base, token, concurrency, requests))
                rows.append(Row(f"HTTP, {name}", concurrency, latencies, seconds))
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGTERM)
        server.join(timeout=30)
    if only == "dashboard":
        return rows
    coordinator = next(iter(users.values()))[0]
    rows.append(_sql_only(url, coordinator, requests, as_caller=True))
    rows.append(_sql_only(url, coordinator, requests, as_caller=False))
    return rows


HEADER = ["scenario", "conc.", "pages", "p50 ms", "p95 ms", "p99 ms", "max ms", "pages/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mentors", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1000, help="pages per scenario")
    parser.add_argument("--only", choices=["all", "api", "dashboard"], default="all")
    parser.add_argument("--cases", default="", help="dashboard cases whose label contains "
                        "any of these comma-separated words (default: all)")  # fmt: skip
    args = parser.parse_args()
    rows = run(args.mentors, args.requests, args.only, args.cases)
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADER, title=f"GET /api/v1/mentors, {PAGE} per page, {args.mentors:,} "
                  f"mentors ({_common.machine()}, {_common.stamp()})")  # fmt: skip
    for row in rows:
        table.add_row(*row.cells())
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
