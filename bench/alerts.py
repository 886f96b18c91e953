"""The push-credential outage drill (issue 17): no alert lost, one operator notice, no pile.

    PYTHONPATH=. uv run python -m bench.alerts [--quick] [--drain N]

The product as deployed (real worker and dispatcher, real google-auth and msal, the sandbox in its
own process, PostgreSQL), on a FakeClock so a 30-minute outage (three times the old retry
schedule of ~10.6 minutes) takes seconds: the push key is revoked (the token endpoint answers
`invalid_grant`, live tokens get 401), mentors' syncs fail for good in three waves during the
outage (each raises a coordinator alert), the scheduled health check runs every 5 minutes as it
would, then the key is restored. Reports alerts raised during the outage, pushes delivered
after, alerts lost (must be 0), duplicates, operator notices on the webhook and token requests
made during the outage.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from hlfsync import services
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock
from hlfsync.worker import push_health
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.receiver import WebhookReceiver

STEP_S = 5.0
HEALTH_EVERY_S = 300.0
DRAIN_LIMIT_S = 900.0


@dataclass
class DrillReport:
    alerts_during_outage: int
    pushes_expected: int
    pushes_delivered_after: int
    alerts_lost: int
    duplicate_pushes: int
    out_of_order_pushes: int
    operator_alert_notices: int
    operator_recovered_notices: int
    token_requests_during_outage: int
    attempts_spent_during_outage: int
    seconds: float


def _people(url: str, *, mentors: int, coordinators: int) -> list[str]:
    """One organisation and chapter, coordinators with a device each, an admin, the mentors."""
    tokens = [f"coordinator-{i}:APA91b{uuid.uuid4().hex}" for i in range(coordinators)]
    with psycopg.connect(url, autocommit=True) as conn:
        org = conn.execute(
            "INSERT INTO organizations (name) VALUES ('Drill') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO org_settings (organization_id) VALUES (%s)", [org])
        chapter = conn.execute(
            "INSERT INTO chapters (organization_id, name) VALUES (%s, 'Drill') RETURNING id", [org]
        ).fetchone()[0]  # type: ignore[index]
        for index, token in enumerate([*tokens, f"admin:APA91b{uuid.uuid4().hex}"]):
            user = conn.execute(
                "INSERT INTO app_users (organization_id, full_name) VALUES (%s, 'Drill')"
                " RETURNING id", [org],
            ).fetchone()[0]  # type: ignore[index]  # fmt: skip
            if index < coordinators:
                conn.execute("INSERT INTO coordinator_chapters (user_id, chapter_id)"
                             " VALUES (%s, %s)", [user, chapter])  # fmt: skip
            else:
                conn.execute("INSERT INTO organization_admins (user_id, organization_id)"
                             " VALUES (%s, %s)", [user, org])  # fmt: skip
            conn.execute(
                "INSERT INTO device_tokens (user_id, token) VALUES (%s, %s)", [user, token]
            )
        for _ in range(mentors):
            mentor = conn.execute(
                "INSERT INTO peer_mentors (organization_id, full_name, status, dynamics_contact_id)"
                " VALUES (%s, 'Drill', 'active', gen_random_uuid()) RETURNING id", [org],
            ).fetchone()[0]  # type: ignore[index]  # fmt: skip
            conn.execute("INSERT INTO chapter_memberships (mentor_id, chapter_id) VALUES (%s, %s)",
                         [mentor, chapter])  # fmt: skip
    return tokens


class _Drive:
    """Runs the deployed loops on the fake clock: worker, dispatcher, the 5-minute health check."""

    def __init__(self, built: services.WorkerServices, clock: FakeClock) -> None:
        self.built, self.clock = built, clock
        self.elapsed = self.next_health = 0.0

    async def step(self) -> None:
        if self.elapsed >= self.next_health:
            built = self.built
            await push_health.check_push_credentials(built.pool, built.notifier, self.clock)
            self.next_health += HEALTH_EVERY_S
        await self.built.worker.run_once()
        await self.built.dispatcher.run_once()
        self.clock.advance(STEP_S)
        self.elapsed += STEP_S


def _waiting(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM alert_deliveries WHERE status <> 'delivered')"
        " + (SELECT count(*) FROM operator_notices WHERE status <> 'delivered')"
    ).fetchone()
    return int(row[0]) if row else 0


def _out_of_order(messages: list[Any], tokens: list[str], alert_order: dict[str, int]) -> int:
    """Pushes a device got before an alert raised earlier (alert ids ascend as raised)."""
    last: dict[str, int] = {}
    late = 0
    for message in messages:
        order = alert_order.get(message["data"].get("mentor_id", ""))
        if message["token"] not in tokens or order is None:
            continue
        late += order < last.get(message["token"], -1)
        last[message["token"]] = order
    return late


def _google_token_requests(admin: AdminClient) -> int:
    return sum(1 for r in admin.requests(kind="token") if r["path"] == "/token")


async def drill(
    url: str,
    env: dict[str, str],
    admin: AdminClient,
    hook: WebhookReceiver,
    *,
    mentors: int = 30,
    coordinators: int = 3,
    outage_s: float = 1800.0,
) -> DrillReport:
    """Run the drill on a migrated, empty database `url` against the sandbox `env`."""
    started = time.perf_counter()
    tokens = _people(url, mentors=mentors, coordinators=coordinators)
    values: dict[str, Any] = {k.removeprefix("HLFSYNC_").lower(): v for k, v in env.items()}
    values.update(database_url=url, operator_webhook_url=hook.url, breaker_failure_threshold=1000)
    settings = Settings(**values)
    clock = FakeClock(datetime.now(UTC) + timedelta(seconds=1))
    built = await services.build_worker(settings, clock=clock)
    sync_failure = [{"method": "PATCH", "kind": "dataverse", "status": 400}]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            contacts = [r[0] for r in conn.execute("SELECT dynamics_contact_id FROM peer_mentors")]
            admin.put_contacts([{"contactid": str(c), "listed": True} for c in contacts])
            admin.clear_fcm_messages()
            # The key is revoked: Google refuses the JWT grant and every live token.
            admin.set_faults(sync_failure, fcm_auth="reject")
            admin.expire_tokens("google")
            token_requests_before = _google_token_requests(admin)
            outage_start = clock.now()
            waves = [0.0, outage_s / 3, 2 * outage_s / 3]
            drive = _Drive(built, clock)
            ids = [r[0] for r in conn.execute("SELECT id FROM peer_mentors ORDER BY id")]
            chunk = -(-len(ids) // len(waves))
            while drive.elapsed < outage_s:
                while waves and drive.elapsed >= waves[0]:
                    waves.pop(0)
                    part, ids = ids[:chunk], ids[chunk:]
                    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)",
                                 [part])  # fmt: skip
                await drive.step()
            token_requests = _google_token_requests(admin) - token_requests_before
            outage_end = clock.now()
            spent = conn.execute(
                "SELECT coalesce(sum(attempt_count), 0) FROM alert_deliveries"
            ).fetchone()[0]  # type: ignore[index]
            during = conn.execute(
                "SELECT count(*) FROM alerts WHERE created_at BETWEEN %s AND %s",
                [outage_start, outage_end],
            ).fetchone()[0]  # type: ignore[index]
            admin.set_faults(sync_failure)  # the key is restored
            restored_at = drive.elapsed
            while drive.elapsed - restored_at < DRAIN_LIMIT_S:
                await drive.step()
                if not _waiting(conn):
                    break
            # Lost: a push not delivered, a mentor alert that reached no device, or an operator
            # alert whose notice never went out.
            lost = conn.execute(
                "SELECT count(*) FROM alerts a WHERE"
                " EXISTS (SELECT 1 FROM alert_deliveries d"
                "          WHERE d.alert_id = a.id AND d.status <> 'delivered')"
                " OR (a.mentor_id IS NOT NULL AND NOT EXISTS"
                "     (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id))"
                # The end of a hold is told by the incident's RECOVERED notice, not its own.
                " OR (a.mentor_id IS NULL AND a.kind <> 'hold_recovered' AND NOT EXISTS"
                "     (SELECT 1 FROM operator_notices n"
                "      WHERE n.alert_id = a.id AND n.status = 'delivered'))"
            ).fetchone()[0]  # type: ignore[index]
            mentor_alerts = conn.execute(
                "SELECT count(*) FROM alerts WHERE mentor_id IS NOT NULL"
            ).fetchone()[0]  # type: ignore[index]
            alert_order = {
                str(mentor): int(alert_id)
                for alert_id, mentor in conn.execute(
                    "SELECT id, mentor_id FROM alerts WHERE mentor_id IS NOT NULL"
                )
            }
    finally:
        await built.aclose()
    messages = admin.fcm_messages()
    pushes = Counter(
        (m["token"], tuple(sorted(m["data"].items()))) for m in messages if m["token"] in tokens
    )
    return DrillReport(
        alerts_during_outage=int(during),
        pushes_expected=int(mentor_alerts) * coordinators,
        pushes_delivered_after=sum(pushes.values()),
        alerts_lost=int(lost),
        duplicate_pushes=sum(n - 1 for n in pushes.values()),
        out_of_order_pushes=_out_of_order(messages, tokens, alert_order),
        operator_alert_notices=sum(1 for t in hook.texts if t.startswith("hlfsync ALERT")),
        operator_recovered_notices=sum(1 for t in hook.texts if t.startswith("hlfsync RECOVERED")),
        token_requests_during_outage=token_requests,
        attempts_spent_during_outage=int(spent),
        seconds=time.perf_counter() - started,
    )


def run(quick: bool) -> DrillReport:
    """The drill on a fresh database and a sandbox process, as `python -m bench` runs it."""
    from bench import _common

    url = _common.fresh_database("bench_alerts", mentors=0)
    _common.quiet_scheduler(url)  # the drill runs the health check itself, on the fake clock
    with _common.sandbox_process() as (env, admin), WebhookReceiver() as hook:
        return asyncio.run(
            drill(url, env, admin, hook, mentors=9 if quick else 30,
                  outage_s=900.0 if quick else 1800.0)
        )  # fmt: skip


@dataclass
class DrainReport:
    """One dispatcher draining a first night's due pushes."""

    pushes: int
    seconds: float
    cpu_ms_per_push: float
    commits_per_push: float

    @property
    def per_s(self) -> float:
        return self.pushes / self.seconds


def _commits(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _drain(url: str, env: dict[str, str]) -> tuple[float, float]:
    """One dispatcher as a worker builds it, logging as deployed (info, JSON; to /dev/null, so
    the rendering and the writes count, not a disk), sending until nothing is due: seconds and
    CPU seconds."""
    from hlfsync import observability
    from hlfsync.core.clock import SystemClock
    from hlfsync.db.pool import open_pool
    from hlfsync.notify.factory import build_notifier
    from hlfsync.worker.dispatcher import AlertDispatcher

    async def drain() -> tuple[float, float]:
        values: dict[str, Any] = {k.removeprefix("HLFSYNC_").lower(): v for k, v in env.items()}
        notifier = build_notifier(Settings(**values | {"database_url": url}))
        pool = await open_pool(url, max_size=4)
        dispatcher = AlertDispatcher(pool, notifier, SystemClock())
        try:
            cpu, started = time.process_time(), time.perf_counter()
            while await dispatcher.run_once():
                pass
            return time.perf_counter() - started, time.process_time() - cpu
        finally:
            await dispatcher.aclose()
            await pool.close()

    with Path(os.devnull).open("w") as sink:
        observability.configure("info", "json", sink)
        return asyncio.run(drain())


def push_drain(pushes: int, devices: int = 50) -> DrainReport:
    """The product's dispatcher and FCM client (real google-auth, real HTTP to the sandbox in its
    own process) draining `pushes` due deliveries (in whole alerts, at least one), an alert to
    each of `devices` devices, as after a first night's expiry check; with the dispatcher's CPU
    and the database commits per push (`pg_stat_database`, this database, pool checks included).
    Nothing else runs, so no live loop to give way to: the dispatcher's own rate."""
    from bench import _common
    from hlfsync.testing import make_alert

    alerts = max(1, pushes // devices)
    url = _common.fresh_database("bench_push_drain", mentors=0)
    with psycopg.connect(url, autocommit=True) as conn:
        due = datetime.now(UTC) - timedelta(seconds=5)
        first, user = make_alert(conn, due)
        # The first night's shape: an alert per paused mentor, a push to each of its
        # coordinators' devices (the dispatcher sends a device's pushes in order, devices at once).
        conn.execute(
            "WITH raised AS ("
            "  INSERT INTO alerts (kind, incident_key, mentor_id, organization_id, payload,"
            "                      details, created_at)"
            "  SELECT a.kind, a.incident_key || ':' || n, a.mentor_id, a.organization_id,"
            "         a.payload, a.details, a.created_at"
            "    FROM alerts a, generate_series(2, %s) AS n WHERE a.id = %s"
            "  RETURNING id)"
            " INSERT INTO alert_deliveries (alert_id, user_id, device_token, next_attempt_at)"
            " SELECT r.id, %s, 'device-' || d, %s"
            "   FROM (SELECT %s::bigint AS id UNION ALL SELECT id FROM raised) AS r,"
            "        generate_series(1, %s) AS d",
            [alerts, first, user, due, first, devices],
        )
        conn.execute("VACUUM ANALYZE alert_deliveries")

    with _common.sandbox_process() as (env, _admin):
        before = _commits(url)
        # In a fresh interpreter: the product logs each push at info, its default, and this
        # process's loggers are set to warning (and cached) for the drill.
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as child:
            seconds, cpu_s = child.submit(_drain, url, env).result()
        time.sleep(0.6)  # the statistics of the last backends to close reach the view
        commits = _commits(url) - before
    with psycopg.connect(url) as conn:
        done = conn.execute(
            "SELECT count(*) FROM alert_deliveries WHERE status = 'delivered'"
        ).fetchone()
    delivered = int(done[0]) if done else 0
    if delivered != alerts * devices:
        raise RuntimeError(f"{delivered} of {alerts * devices} pushes delivered")
    return DrainReport(delivered, seconds, cpu_s * 1000 / delivered, commits / delivered)


def main() -> None:
    from hlfsync import observability

    observability.configure("warning", "json")  # as `python -m bench` runs it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--drain", type=int, metavar="N",
                        help="only drain N due pushes with one dispatcher")  # fmt: skip
    args = parser.parse_args()
    if args.drain:
        drained = push_drain(args.drain)
        print(f"{drained.pushes:,} pushes in {drained.seconds:.2f} s: {drained.per_s:,.0f}/s,"
              f" dispatcher {drained.cpu_ms_per_push:.2f} ms CPU/push,"
              f" {drained.commits_per_push:.2f} commits/push")  # fmt: skip
        return
    report = run(args.quick)
    print("alert drill, scheduler quiet: the drill runs the health check itself, on a fake clock")
    for name, value in vars(report).items():
        print(f"{name:32} {value:.1f}" if isinstance(value, float) else f"{name:32} {value}")
    sys.exit(0 if report.alerts_lost == 0 and report.duplicate_pushes == 0 else 1)


if __name__ == "__main__":
    main()
