"""Drain rate of the sync engine: how fast a backlog of queued operations reaches Dynamics.

    uv run python bench/drain.py [--ops 10000] [--quick]

Scenarios, each on a fresh database with the backlog queued by the real outbox trigger:
- in-process client, zero latency: what the engine itself costs per operation;
- in-process client with 100 ms latency at concurrency 1, 10, 50: achieved / (c / latency);
- baseline: plain psycopg claiming one row at a time (SKIP LOCKED), same zero-latency client;
- webhook-v1 over HTTPS (`--webhook`): a `hlfsync worker` process, one POST per change to the
  sandbox's webhook, against hand-written loops (claim 50 rows with SKIP LOCKED, POST each,
  mark them done in one statement) posting the same signed events to the same sink: worker CPU
  per operation and throughput, and their ratio to each loop's (what the guarantees cost). The
  loops: one shared httpx client (the baseline), one aiohttp session when aiohttp is installed
  (`uv run --with aiohttp ...`), raw HTTP/1.1 on asyncio streams (no HTTP library at all).
The same over real HTTPS, with worker processes and the sandbox, is `bench.sync`.
Prints one table and returns the rows for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psycopg

from bench import _common
from hlfsync import services, settings
from hlfsync.core.clock import SystemClock
from hlfsync.testing import RecordingNotifier

if TYPE_CHECKING:
    from hlfsync.dynamics.port import DynamicsClient


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
    # Not the whole port: the engine alone (no scheduler, one change per call) calls `apply`.
    built = await services.build_worker(conf, clock=SystemClock(),
                                        client=cast("DynamicsClient", client),
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


# --- webhook-v1: the worker against a hand-written loop, same sink -----------------------------

HAND_BATCH = 50


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_succeeded(url: str, ops: int, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - started < timeout_s:
            row = conn.execute(
                "SELECT count(*) FROM sync_queue WHERE status IN ('succeeded', 'dead_lettered')"
            ).fetchone()
            if row and row[0] >= ops:
                return time.perf_counter() - started
            time.sleep(0.01)
    raise RuntimeError(f"{ops:,} operations not done within {timeout_s:.0f} s")


def _queue_backlog(url: str, ops: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id IN"
                     " (SELECT id FROM peer_mentors ORDER BY id LIMIT %s)", [ops])  # fmt: skip


def _worker_webhook(url: str, env: dict[str, str], ops: int, concurrency: int) -> Row:
    folder = Path(tempfile.mkdtemp(prefix="hlfsync-bench-webhook-"))
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    # Default settings, logging included (one line per attempt, to a file): as deployed.
    worker_env |= env | {"HLFSYNC_DATABASE_URL": url, "HLFSYNC_DATA_DIR": str(folder)}
    with (folder / "worker.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hlfsync", "worker", "--concurrency", str(concurrency)],
            env=worker_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query ="
                                   " 'LISTEN hlfsync_alerts'").fetchone()  # fmt: skip
                if row and row[0]:
                    break
                time.sleep(0.02)
        time.sleep(1.0)  # start-up (imports, the first health check) is not the cost per op
        # HLFSYNC_BENCH_PYSPY=FILE: a py-spy profile of the worker over the drain (raw
        # collapsed stacks; py-spy from PyPI, e.g. in a scratch venv on PATH).
        profile = os.environ.get("HLFSYNC_BENCH_PYSPY")
        spy = (subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--format", "raw",
                                 "-o", profile, "--rate", "200"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               if profile else None)  # fmt: skip
        cpu0 = _proc_cpu_s(proc.pid)
        _queue_backlog(url, ops)
        seconds = _wait_succeeded(url, ops)
        cpu = _proc_cpu_s(proc.pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # Its scheduled slots are recorded as done: the sync path alone (labelled so).
    label = f"webhook-v1, hlfsync worker, c={concurrency} (nothing scheduled due)"
    return Row(label, ops, seconds, cpu)


class _RawHttp:
    """The leanest client a hand-written loop would use: keep-alive HTTP/1.1 over TLS on plain
    asyncio streams, one connection per request in flight, nothing else."""

    def __init__(self, url: str, verify: str | bool) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "localhost", parts.port or 443
        self.path = parts.path or "/"
        self.ssl = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, server_hostname=self.host)  # fmt: skip
        reader, writer = conn
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n{lines}"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        self.idle.append(conn)
        return int(head[9:12])

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


HAND_CLIENTS = {
    "httpx": "one shared httpx.AsyncClient, keep-alive, pool of 50",
    "aiohttp": "one shared aiohttp.ClientSession, keep-alive, pool of 50",
    "raw": "raw HTTP/1.1 on asyncio streams (extra: no HTTP library)",
}


async def _hand_loop(url: str, env: dict[str, str], ops: int, *, client: str) -> None:
    """Claim 50 with SKIP LOCKED, POST each signed event, mark the 50 done: nothing else.

    `client`: "httpx" (what a team would write first: one `httpx.AsyncClient`, keep-alive,
    limits sized for the batch), "aiohttp" (the same with one `aiohttp.ClientSession`; only when
    aiohttp is installed, e.g. `uv run --with aiohttp`) or "raw" (`_RawHttp`).
    """
    import httpx

    from hlfsync.dynamics.webhook import sign

    secret = env["HLFSYNC_DYNAMICS_WEBHOOK_SECRET"]
    sink = env["HLFSYNC_DYNAMICS_URL"]
    verify = env.get("HLFSYNC_DYNAMICS_CA_BUNDLE", True)
    tls = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    limits = httpx.Limits(max_connections=HAND_BATCH, max_keepalive_connections=HAND_BATCH)
    raw = _RawHttp(sink, verify)
    session: Any = None
    if client == "aiohttp":
        import aiohttp  # type: ignore[import-not-found, unused-ignore]

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=HAND_BATCH, ssl=tls),
                                        timeout=aiohttp.ClientTimeout(total=30))  # fmt: skip
    async with (
        httpx.AsyncClient(verify=tls, limits=limits, timeout=30) as http,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as conn,
    ):

        async def post(row: tuple[Any, ...]) -> None:
            qid, mentor, operation, payload = row
            body = json.dumps(
                {"type": f"mentor.listing.{'removed' if operation == 'remove' else 'restored'}",
                 "mentor_id": str(mentor), "contact_id": payload["contact_id"],
                 "occurred_at": payload["changed_at"], "idempotency_key": f"hlfsync-{qid}"},
                separators=(",", ":"), sort_keys=True,
            ).encode()  # fmt: skip
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-HLF-Timestamp": stamp,
                       "X-HLF-Signature": sign(secret, stamp, body)}  # fmt: skip
            if client == "raw":
                status = await raw.post(body, headers)
            elif client == "aiohttp":
                async with session.post(sink, data=body, headers=headers) as answer:
                    await answer.read()
                    status = answer.status
            else:
                status = (await http.post(sink, content=body, headers=headers)).status_code
            if status >= 300:
                raise RuntimeError(f"the sink answered {status}")

        done = 0
        while done < ops:
            cur = await conn.execute(
                "WITH picked AS (SELECT id FROM sync_queue WHERE status = 'pending'"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
                " UPDATE sync_queue q SET status = 'in_progress', claim_count = claim_count + 1,"
                " locked_until = now() + interval '60 seconds' FROM picked WHERE q.id = picked.id"
                " RETURNING q.id, q.mentor_id, q.operation, q.payload_json",
                [HAND_BATCH],
            )
            rows = await cur.fetchall()
            if not rows:
                break
            await asyncio.gather(*(post(row) for row in rows))
            await conn.execute(
                "UPDATE sync_queue SET status = 'succeeded', finished_at = now(),"
                " locked_until = NULL, attempt_count = attempt_count + 1 WHERE id = ANY(%s)",
                [[row[0] for row in rows]],
            )
            done += len(rows)
    if session is not None:
        await session.close()
    raw.close()


def _has_aiohttp() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def webhook(ops: int, concurrency: int = 50) -> list[Row]:
    """hlfsync's worker and the hand-written loops, webhook-v1, same sink, same backlog.

    The first loop (httpx) is the baseline of the ratio column; `main` prints the ratio to each.
    """
    clients = _loop_names()
    with _common.sandbox_process() as (sandbox_env, admin):
        env = sandbox_env | {
            "HLFSYNC_DYNAMICS_CONTRACT": "webhook-v1",
            "HLFSYNC_DYNAMICS_URL": sandbox_env["HLFSYNC_DYNAMICS_URL"] + "/webhook",
        }
        url = _common.fresh_database("bench_drain_webhook", mentors=ops)
        _common.quiet_scheduler(url)  # start-up jobs are not the cost per operation
        _common.mirror_contacts(url, admin)
        worker = _worker_webhook(url, env, ops, concurrency)
        loops = []
        for client in clients:
            url = _common.fresh_database(f"bench_drain_hand_{client}", mentors=ops)
            _common.mirror_contacts(url, admin)
            _queue_backlog(url, ops)
            started, cpu0 = time.perf_counter(), _cpu()
            asyncio.run(_hand_loop(url, env, ops, client=client))
            loops.append(Row(f"webhook-v1, hand-written loop (SKIP LOCKED, {HAND_BATCH} at a "
                             f"time), {HAND_CLIENTS[client]}", ops, time.perf_counter() - started,
                             _cpu() - cpu0))  # fmt: skip
    for row in (worker, *loops[1:]):
        row.target = loops[0].rate
    return [worker, *loops]


HEADER = ["scenario", "ops", "seconds", "ops/s", "CPU ms/op",
          "achieved/ideal (webhook: ÷ httpx loop)"]  # fmt: skip


def main() -> None:
    from hlfsync import observability

    # Warnings and errors only: a log line per attempt is part of the product, but printing
    # 10,000 of them to a terminal measures the terminal.
    observability.configure("warning", "json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small latency runs")
    parser.add_argument("--webhook", action="store_true",
                        help="only webhook-v1: the worker against a hand-written loop")  # fmt: skip
    args = parser.parse_args()
    rows = webhook(args.ops) if args.webhook else run(args.ops, args.quick) + webhook(args.ops)
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADER, title=f"drain rate ({_common.machine()}, {_common.stamp()})")
    for row in rows:
        table.add_row(*row.cells())
    Console().print(table)
    hooks = [row for row in rows if row.scenario.startswith("webhook-v1")]
    if len(hooks) >= 2:
        worker, loops = hooks[0], hooks[1:]
        Console().print(
            f"webhook-v1 (load average {os.getloadavg()[0]:.1f}): worker "
            f"{worker.cpu_s / worker.ops * 1000:.2f} ms CPU/op (target ≤ 1.5), throughput ÷ "
            "hand-written loop (target ≥ 0.7): "
            + "; ".join(
                f"{worker.rate / loop.rate:.2f} of the {name} loop "
                f"({loop.cpu_s / loop.ops * 1000:.2f} ms CPU/op)"
                for name, loop in zip(_loop_names(), loops, strict=False)
            )
        )
        if not _has_aiohttp():
            Console().print("(an aiohttp loop is added when aiohttp is installed: "
                            "uv run --with aiohttp ...)")  # fmt: skip


def _loop_names() -> list[str]:
    """The hand-written loops `webhook` runs, in its order: the first is the baseline."""
    return ["httpx", *(["aiohttp"] if _has_aiohttp() else []), "raw"]


if __name__ == "__main__":
    main()
