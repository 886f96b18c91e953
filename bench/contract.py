"""Contract-drift drill: the listing field is renamed in the sandbox while changes flow, then
restored. A worker process as deployed, the sandbox in its own process, real time.

    PYTHONPATH=. uv run python -m bench.contract [--mentors 2000] [--drift-s 20]

Measures what the issue asks: changes held during the drift, dead letters (must be 0),
administrator alerts (must be exactly 1 contract alert and 1 "recovered" notice), and the time
from the fix to the last held change applied, with listing = status for every mentor.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg

from bench import _common

RENAMED = "hlf_listed_v2"
COOLDOWN_S = 10.0  # HLFSYNC_BREAKER_COOLDOWN for this drill (60 s by default); stated in the row


@dataclass
class Drill:
    mentors: int
    changes: int  # status changes committed during the whole run
    held_peak: int  # most operations pending at once during the drift
    dead_letters: int
    contract_alerts: int
    recovered_notices: int
    replay_s: float  # from the fix to listing = status for every mentor
    consistent: bool


def _flow(conn: psycopg.Connection[tuple[object, ...]], ids: list[object], rng: random.Random,
          per_tick: int) -> int:  # fmt: skip
    """Flip `per_tick` random mentors' status: changes keep flowing."""
    chosen = rng.sample(ids, per_tick)
    conn.execute(
        "UPDATE peer_mentors SET status = CASE status WHEN 'active' THEN 'paused'"
        " ELSE 'active' END WHERE id = ANY(%s)",
        [chosen],
    )
    return per_tick


def _consistent(conn: psycopg.Connection[tuple[object, ...]], admin: object) -> bool:
    wanted = {
        str(c): s == "active"
        for c, s in conn.execute(
            "SELECT dynamics_contact_id, status FROM peer_mentors"
            " WHERE dynamics_contact_id IS NOT NULL"
        )
    }
    got = {c["contactid"]: c["listed"] for c in admin.contacts()}  # type: ignore[attr-defined]
    return got == wanted


def run(mentors: int, drift_s: float, before_s: float = 3.0, per_tick: int = 5) -> Drill:
    url = _common.fresh_database("bench_contract", mentors=mentors)
    _common.quiet_scheduler(url)
    rng = random.Random(14)  # which mentors change, not secrets
    with _common.sandbox_process() as (env, admin):
        _common.mirror_contacts(url, admin)
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
        # Logging as deployed (info), thrown away: the drill reads the database, not the lines.
        worker_env |= env | {"HLFSYNC_DATABASE_URL": url,
                             "HLFSYNC_BREAKER_COOLDOWN": str(COOLDOWN_S)}  # fmt: skip
        worker = subprocess.Popen([sys.executable, "-m", "hlfsync", "worker"], env=worker_env,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        changes, held_peak = 0, 0
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                ids = [r[0] for r in conn.execute("SELECT id FROM peer_mentors")]
                started = time.monotonic()
                while time.monotonic() - started < before_s:
                    changes += _flow(conn, ids, rng, per_tick)
                    time.sleep(0.1)
                admin.set_faults(drift={"listing_field": RENAMED})
                started = time.monotonic()
                while time.monotonic() - started < drift_s:
                    changes += _flow(conn, ids, rng, per_tick)
                    pending = conn.execute(
                        "SELECT count(*) FROM sync_queue WHERE status = 'pending'"
                    ).fetchone()
                    held_peak = max(held_peak, int(pending[0]) if pending else 0)
                    time.sleep(0.1)
                admin.clear_faults()
                fixed = time.monotonic()
                deadline = fixed + 180
                while time.monotonic() < deadline:
                    waiting = conn.execute(
                        "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'in_progress')"
                    ).fetchone()
                    if waiting == (0,) and _consistent(conn, admin):
                        break
                    time.sleep(0.1)
                replay_s = time.monotonic() - fixed
                dead = conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone()
                alerts: dict[str, int] = dict(
                    conn.execute("SELECT kind, count(*) FROM alerts GROUP BY kind").fetchall()
                )
                consistent = _consistent(conn, admin)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return Drill(
        mentors=mentors, changes=changes, held_peak=held_peak,
        dead_letters=int(dead[0]) if dead else -1,
        contract_alerts=int(alerts.get("contract_failure", 0)),
        recovered_notices=int(alerts.get("hold_recovered", 0)),
        replay_s=replay_s, consistent=consistent,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mentors", type=int, default=2000)
    parser.add_argument("--drift-s", type=float, default=20.0)
    args = parser.parse_args()
    result = run(args.mentors, args.drift_s)
    from rich.console import Console
    from rich.table import Table

    table = Table("mentors", "changes", "held (peak)", "dead letters", "alerts", "recovered",
                  "replay after fix", "listing = status",
                  title=f"contract drift, scheduler quiet: the drill runs the health check "
                        f"itself ({_common.machine()}, {_common.stamp()})")  # fmt: skip
    table.add_row(f"{result.mentors:,}", f"{result.changes:,}", f"{result.held_peak:,}",
                  str(result.dead_letters), str(result.contract_alerts),
                  str(result.recovered_notices), f"{result.replay_s:.1f} s",
                  "yes" if result.consistent else "NO")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
