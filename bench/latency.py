"""Event latency: a committed status change until the sandbox receives the PATCH.

    uv run python -m bench.latency [--changes 1000]

A worker process (`hlfsync worker`) and the sandbox process run as in production; this process
commits status changes one at a time, `--gap-ms` apart (50 a second by default, far above HLF's
real rate, so the queue is nearly always idle when one arrives) and reads, from the
sandbox's request log, when each PATCH arrived. Commit and arrival are both stamped with this
machine's clock. Target: p50 <= 20 ms, p99 <= 100 ms (LISTEN/NOTIFY, not polling).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psycopg

from bench import _common


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run(changes: int, gap_s: float) -> dict[str, float]:
    url = _common.fresh_database("bench_latency", mentors=changes + 1)
    _common.quiet_scheduler(url)
    with _common.sandbox_process() as (env, admin):
        _common.mirror_contacts(url, admin)
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
        worker_env |= env | {"HLFSYNC_DATABASE_URL": url, "HLFSYNC_LOG_LEVEL": "warning"}
        worker = subprocess.Popen([sys.executable, "-m", "hlfsync", "worker"], env=worker_env,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                mentors = conn.execute(
                    "SELECT id, dynamics_contact_id FROM peer_mentors ORDER BY id LIMIT %s",
                    [changes + 1],
                ).fetchall()
                # Warm-up: the worker's first call fetches a token.
                conn.execute("UPDATE peer_mentors SET status='paused' WHERE id=%s", [mentors[0][0]])
                _wait_patches(admin, 1)
                admin.clear_requests()
                committed: dict[str, float] = {}
                for mentor, contact in mentors[1:]:
                    conn.execute("UPDATE peer_mentors SET status='paused' WHERE id=%s", [mentor])
                    committed[f"contacts({contact})"] = time.time()
                    time.sleep(gap_s)
                arrivals = _wait_patches(admin, changes)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    latencies = []
    for request in arrivals:
        key = request["path"].rsplit("/", 1)[-1]
        if key in committed:
            latencies.append((request["at"] - committed[key]) * 1000)
    return {
        "changes": len(latencies),
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": max(latencies),
        "mean_ms": statistics.mean(latencies),
    }


def _wait_patches(admin: object, count: int, timeout_s: float = 120) -> list[dict[str, float]]:
    deadline = time.monotonic() + timeout_s
    while True:
        patches = [r for r in admin.requests(kind="dataverse") if r["method"] == "PATCH"]  # type: ignore[attr-defined]
        if len(patches) >= count or time.monotonic() > deadline:
            return patches
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args()
    result = run(args.changes, args.gap_ms / 1000)
    from rich.console import Console
    from rich.table import Table

    table = Table("changes", "p50 ms", "p95 ms", "p99 ms", "max ms",
                  title=f"event latency ({_common.machine()}, {_common.stamp()})")  # fmt: skip
    table.add_row(str(result["changes"]), f"{result['p50_ms']:.1f}", f"{result['p95_ms']:.1f}",
                  f"{result['p99_ms']:.1f}", f"{result['max_ms']:.1f}")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
