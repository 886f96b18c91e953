"""What recording the confirmed listing costs the sync hot path (migration 0014's trigger).

    PYTHONPATH=. uv run python -m bench.confirm [--ops 20000] [--batch 100] [--rounds 3]

The worker's own queries, in the worker's shape: claim `batch` operations, then settle them in
one `succeed_many`, until `ops` are done; database time per operation with the statement-level
trigger `sync_queue_confirm_listing` enabled, and with it disabled (an isolated comparison: the
product always runs with it). Rounds alternate, on the same database, re-queued between runs.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import psycopg

from bench import _common
from hlfsync.db.queries import q
from hlfsync.db.queue import HIGHEST_PRIORITY, LOWEST_PRIORITY


def _drain(conn: psycopg.Connection[tuple[object, ...]], batch: int) -> tuple[int, float]:
    done, began = 0, time.perf_counter()
    while True:
        now = datetime.now(UTC)
        claimed = conn.execute(
            q("claim"),
            {
                "due": now,
                "limit": batch,
                "worker": "b",
                "now": now,
                "lease": 60,
                "min_priority": LOWEST_PRIORITY,
                "max_priority": HIGHEST_PRIORITY,
            },
        ).fetchall()
        if not claimed:
            return done, time.perf_counter() - began
        conn.execute(
            q("succeed_many"),
            {"ids": [r[0] for r in claimed], "claims": [r[7] for r in claimed],
             "at": [now] * len(claimed), "durations": [1.0] * len(claimed),
             "statuses": [204] * len(claimed), "correlations": ["b"] * len(claimed),
             "actor": "bench"},
        )  # fmt: skip
        done += len(claimed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = _common.fresh_database("bench_confirm", mentors=args.ops)
    results: dict[bool, list[float]] = {True: [], False: []}
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(args.rounds):
            for enabled in (True, False):
                action = "ENABLE" if enabled else "DISABLE"
                conn.execute(f"ALTER TABLE sync_queue {action} TRIGGER sync_queue_confirm_listing")
                conn.execute("SELECT enqueue_sync(NULL, 'force', 0, 'bench')")
                done, seconds = _drain(conn, args.batch)
                results[enabled].append(seconds / done * 1e6)
        conn.execute("ALTER TABLE sync_queue ENABLE TRIGGER sync_queue_confirm_listing")
    for enabled, per_op in results.items():
        label = "with the trigger" if enabled else "without (isolated)"
        median = sorted(per_op)[len(per_op) // 2]
        print(f"{label}: {min(per_op):.1f} µs/op best, {median:.1f} median of {len(per_op)} "
              f"rounds; {args.ops:,} ops, batches of {args.batch}")  # fmt: skip


if __name__ == "__main__":
    main()
