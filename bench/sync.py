"""The sync engine as deployed: `hlfsync worker` processes, the sandbox in its own process, HTTPS.

    PYTHONPATH=. uv run python -m bench.sync [--quick]

Each scenario gets a fresh database with every mentor active and its contact in the sandbox;
the workers start on an empty queue and are ready (LISTENing) before the backlog is committed
in one transaction by the real outbox trigger, so the clock runs from that commit to the last
success. CPU and peak RSS are each worker process's own (`wait4` after SIGTERM).

- drain: 10,000 and 100,000 operations, one and two workers, zero latency, default settings
  (`$batch` of up to 100 for a backlog);
- latency: 100 ms per call, concurrency 50, every change its own PATCH: achieved ÷ (50 ÷ 0.1 s);
- rate limit: the sandbox allows 20 requests/s; every change its own PATCH: requests accepted
  per second ÷ 20, and dead letters (must be 0);
- full re-sync of 10,000 mentors (`force-sync --all`) under that limit, with and without
  `$batch`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import _common
from hlfsync.db import operations
from hlfsync_sandbox.client import AdminClient

RATE_LIMIT = 20.0


@dataclass
class Outcome:
    scenario: str
    ops: int
    seconds: float
    cpu_s: float
    peak_rss_mib: float
    sandbox_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]
    usage: list[Any] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)

    def stop(self) -> None:
        # Peak RSS from the kernel's high-water mark of each worker's own memory, read before
        # it exits: wait4's ru_maxrss would also count the benchmark process it was forked from.
        self.peaks_kib = [_vm_hwm_kib(proc.pid) for proc in self.procs]
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.usage.append(usage)

    @property
    def cpu_s(self) -> float:
        return float(sum(u.ru_utime + u.ru_stime for u in self.usage))

    @property
    def peak_rss_mib(self) -> float:
        return max(self.peaks_kib) / 1024


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


@contextlib.contextmanager
def workers(
    url: str,
    sandbox_env: dict[str, str],
    count: int,
    *,
    concurrency: int,
    batch: int,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Workers]:
    folder = Path(tempfile.mkdtemp(prefix="hlfsync-bench-workers-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env.update(sandbox_env)
    # Logging as deployed: the default level (info, a `sync_attempt` line per call), JSON into
    # each worker's log file.
    env.update(HLFSYNC_DATABASE_URL=url, HLFSYNC_DATA_DIR=str(folder),
               HLFSYNC_DYNAMICS_BATCH_SIZE=str(batch))  # fmt: skip
    env.update(extra_env or {})
    logs = [folder / f"worker-{i}.log" for i in range(count)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "hlfsync", "worker", "--concurrency", str(concurrency)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    running = Workers(procs, logs)
    try:
        _wait_listening(url, count, procs)
        yield running
    finally:
        if not running.usage:
            running.stop()


def _wait_listening(url: str, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited at start; see its log")
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query = 'LISTEN hlfsync_alerts'"
            ).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.05)
    raise RuntimeError("workers did not start listening within 60 s")


def _wait_done(url: str, ops: int, *, timeout_s: float) -> float:
    """Seconds until `ops` operations have ended (succeeded or dead-lettered)."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - started < timeout_s:
            row = conn.execute(
                "SELECT count(*) FROM sync_queue WHERE status IN ('succeeded', 'dead_lettered')"
            ).fetchone()
            if row and row[0] >= ops:
                return time.perf_counter() - started
            time.sleep(0.02)
    raise RuntimeError(f"{ops:,} operations not done within {timeout_s:.0f} s")


def _dead_letters(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone()
    return int(row[0]) if row else 0


def _pause(url: str, ops: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE peer_mentors SET status = 'paused' WHERE id IN"
            " (SELECT id FROM peer_mentors ORDER BY id LIMIT %s)",
            [ops],
        )


def _resync_all(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return len(operations.force_sync(conn, None, actor="bench").queued)


def _database(admin: AdminClient, name: str, mentors: int) -> str:
    # Each scenario starts with Dataverse's service-protection window empty, as after five
    # quiet minutes: the requests of the scenario before must not throttle this one.
    admin.clear_faults()
    url = _common.fresh_database(name, mentors=mentors)
    _common.quiet_scheduler(url)
    _common.mirror_contacts(url, admin)
    return url


def _drain(admin: AdminClient, env: dict[str, str], ops: int, count: int) -> Outcome:
    url = _database(admin, f"bench_sync_{ops}_{count}", ops)
    with workers(url, env, count, concurrency=50, batch=100) as running:
        _pause(url, ops)
        seconds = _wait_done(url, ops, timeout_s=1800)
        running.stop()
    return Outcome(f"drain, {count} worker{'s' if count > 1 else ''}, $batch ≤ 100", ops,
                   seconds, running.cpu_s, running.peak_rss_mib,
                   extra={"dead letters": _dead_letters(url)})  # fmt: skip


def _latency(admin: AdminClient, env: dict[str, str], ops: int) -> Outcome:
    url = _database(admin, "bench_sync_latency", ops)
    admin.set_faults(latency_ms=100)
    try:
        with workers(url, env, 1, concurrency=50, batch=1) as running:
            _pause(url, ops)
            seconds = _wait_done(url, ops, timeout_s=600)
            running.stop()
    finally:
        admin.clear_faults()
    out = Outcome("100 ms latency, c=50, one PATCH per change", ops, seconds, running.cpu_s,
                  running.peak_rss_mib)  # fmt: skip
    out.extra["achieved ÷ ideal"] = f"{out.rate / 500:.2f} (≥ 0.9)"
    return out


def _accepted_per_s(admin: AdminClient, since: float) -> tuple[float, int, int]:
    """Requests the sandbox accepted per second between the first and the last, and counts."""
    log = [r for r in admin.requests(since=since, kind="dataverse") if not r["in_batch"]]
    accepted = [r["at"] for r in log if r["status"] != 429]
    throttled = len(log) - len(accepted)
    if len(accepted) < 2:
        return 0.0, len(accepted), throttled
    # n accepted requests span n-1 intervals of the limiter.
    return (len(accepted) - 1) / (max(accepted) - min(accepted)), len(accepted), throttled


def _rate_limited(admin: AdminClient, env: dict[str, str], ops: int, *, batch: int,
                  resync: bool) -> Outcome:  # fmt: skip
    kind = "re-sync (force-sync --all)" if resync else "status changes"
    url = _database(admin, f"bench_sync_rl_{batch}_{int(resync)}", ops)
    admin.clear_requests()
    admin.set_faults(rate_limit_per_s=RATE_LIMIT)
    since = time.time()
    try:
        with workers(url, env, 1, concurrency=50, batch=batch) as running:
            if resync:
                queued = _resync_all(url)
            else:
                _pause(url, ops)
                queued = ops
            seconds = _wait_done(url, queued, timeout_s=3600)
            running.stop()
    finally:
        admin.clear_faults()
    per_s, accepted, throttled = _accepted_per_s(admin, since)
    how = "one PATCH per change" if batch == 1 else f"$batch ≤ {batch}"
    out = Outcome(f"{kind}, limit {RATE_LIMIT:g} req/s, {how}", queued, seconds, running.cpu_s,
                  running.peak_rss_mib)  # fmt: skip
    out.extra.update({
        "requests accepted/s ÷ limit": f"{per_s / RATE_LIMIT:.2f} (≥ 0.95)",
        "requests": f"{accepted:,} accepted, {throttled:,} throttled (429)",
        "dead letters": _dead_letters(url),
    })  # fmt: skip
    return out


def _measured(scenario: Callable[[], Outcome]) -> Outcome:
    """The scenario, with the sandbox's CPU over it (it shares the machine with the workers)."""
    before = _common.sandbox_cpu_s()
    out = scenario()
    out.sandbox_cpu_s = _common.sandbox_cpu_s() - before
    return out


def _outage(admin: AdminClient, env: dict[str, str], ops: int, normal_rate: float) -> Outcome:
    """Dynamics answers 503 to everything for five cool-downs (2 s each here) while a backlog
    waits; then it recovers. Counted from the sandbox's log: calls before the circuit opened,
    the most calls in any one cool-down after, dead letters, and the drain rate after recovery
    against `normal_rate`, the same backlog's rate with no outage just before."""
    cooldown_s, cooldowns = 2.0, 5
    url = _database(admin, "bench_sync_outage", ops)
    admin.clear_requests()
    with workers(url, env, 1, concurrency=50, batch=100,
                 extra_env={"HLFSYNC_BREAKER_COOLDOWN": str(cooldown_s)}) as running:  # fmt: skip
        admin.set_faults([{"kind": "dataverse", "status": 503}])
        down_at = time.time()
        _pause(url, ops)
        time.sleep(cooldown_s * cooldowns)
        admin.clear_faults()
        up_at = time.time()
        _wait_done(url, ops, timeout_s=600)
        done_at = time.time()
        running.stop()
    # From the first call Dynamics accepted (the probe after the cool-down) to the last success.
    first_ok = min(r["at"] for r in admin.requests(since=up_at, kind="dataverse")
                   if not r["in_batch"] and 200 <= r["status"] < 300)  # fmt: skip
    seconds = done_at - first_ok
    calls = sorted(r["at"] for r in admin.requests(since=down_at, kind="dataverse")
                   if not r["in_batch"] and r["at"] < up_at)  # fmt: skip
    # The opening burst: calls already in flight when the third failure came back.
    burst = [t for t in calls if t - calls[0] < 0.5] if calls else []
    later = calls[len(burst) :]
    per_window = [sum(1 for t in later if start <= t < start + cooldown_s)
                  for start in later] or [0]  # fmt: skip
    out = Outcome(f"outage drill: 503 for {cooldowns} cool-downs of {cooldown_s:g} s, then up",
                  ops, seconds, running.cpu_s, running.peak_rss_mib)  # fmt: skip
    out.extra.update({
        "calls before open": len(burst),
        "most calls in one cool-down after": max(per_window),
        "dead letters": _dead_letters(url),
        "drain after recovery ÷ normal": f"{ops / seconds / normal_rate:.2f}",
        "rate without an outage": f"{normal_rate:,.0f}",
    })  # fmt: skip
    return out


def run(quick: bool) -> list[Outcome]:
    small, large = (1_000, 5_000) if quick else (10_000, 100_000)
    rows: list[Outcome] = []
    with _common.sandbox_process() as (env, admin):
        for ops in (small, large):
            for count in (1, 2):
                _progress(f"drain {ops:,} with {count} worker(s)")
                rows.append(_measured(functools.partial(_drain, admin, env, ops, count)))
        _progress("outage drill")
        # Its yardstick is the same backlog drained just before it, not the run's first drain:
        # that one starts a cold sandbox and machine, and the ratio swung 0.87-1.63 on
        # unchanged code (docs/performance.md).
        normal = _drain(admin, env, small, 1)
        rows.append(_measured(lambda: _outage(admin, env, small, normal.rate)))
        _progress("100 ms latency, c=50")
        rows.append(_measured(lambda: _latency(admin, env, 500 if quick else 5_000)))
        _progress("rate limit, status changes")
        n = 200 if quick else 1_200
        rows.append(_measured(lambda: _rate_limited(admin, env, n, batch=1, resync=False)))
        resync = 500 if quick else 10_000
        for batch in (100, 1):
            _progress(f"re-sync of {resync:,} under the rate limit, batch {batch}")
            rows.append(_measured(
                functools.partial(_rate_limited, admin, env, resync, batch=batch, resync=True)
            ))  # fmt: skip
    return rows


HEADER = ["scenario", "ops", "seconds", "ops/s", "worker CPU ms/op", "sandbox CPU ms/op",
          "peak RSS/worker", "notes"]  # fmt: skip


def cells(row: Outcome) -> list[str]:
    notes = "; ".join(f"{k}: {v}" for k, v in row.extra.items())
    return [row.scenario, f"{row.ops:,}", f"{row.seconds:.1f}", f"{row.rate:,.0f}",
            f"{row.cpu_s / row.ops * 1000:.2f}", f"{row.sandbox_cpu_s / row.ops * 1000:.2f}",
            f"{row.peak_rss_mib:.0f} MiB", notes]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    rows = run(args.quick)
    from rich.console import Console
    from rich.table import Table

    # Isolated figures: every scheduled slot is recorded as done (`_database`), so what runs is
    # the sync path alone; bench.latency measures it beside the nightly work.
    title = (f"sync over HTTPS, isolated: scheduler quiet "
             f"({_common.machine()}, {_common.stamp()})")  # fmt: skip
    table = Table(*HEADER, title=title)
    for row in rows:
        table.add_row(*cells(row))
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
