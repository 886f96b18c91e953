"""Shared set-up for benchmarks: a PostgreSQL (embedded unless HLFSYNC_DATABASE_URL), a fresh
database per scenario, seeded mentors, a queue filled through the real outbox trigger."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from hlfsync.db import connect, embedded, migrate, seed
from hlfsync_sandbox.client import AdminClient

_server_url: str | None = None
_sandbox_pid: int | None = None


def server_url() -> str:
    """A superuser URL to a server for benchmark databases (started once per process)."""
    global _server_url  # noqa: PLW0603 - one server per benchmark process
    if _server_url is None:
        given = os.environ.get("HLFSYNC_BENCH_DATABASE_URL")
        if given:
            _server_url = given
        else:
            data = Path(tempfile.mkdtemp(prefix="hlfsync-bench-"))
            _server_url = connect.with_database(embedded.start(data, cleanup="delete"), "postgres")
    return _server_url


def fresh_database(name: str, *, mentors: int, queued: int = 0) -> str:
    """A migrated database with `mentors` seeded and `queued` of them paused (one op each)."""
    admin = server_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = connect.with_database(admin, name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.upgrade(conn)
        seed.seed(conn, mentors=mentors, orgs=3, today=date.today())
        # Everyone active with a contact, so each queued operation is a real call. Triggers
        # off (replica role) for the set-up: activating the paused ones would queue restores
        # whose DELETE checks sync_queue's self-reference row by row (minutes at 100,000).
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE peer_mentors SET status = 'active', status_reason = NULL")
        conn.execute("UPDATE peer_mentors SET dynamics_contact_id = gen_random_uuid()"
                     " WHERE dynamics_contact_id IS NULL")  # fmt: skip
        # Activating the paused ones queued restores: start from an empty queue.
        # Without RI triggers (superuser: the embedded server): each deleted row's check of the
        # self-referencing superseded_by key scans the table, minutes for 50,000 rows.
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM sync_queue")
        conn.execute("RESET session_replication_role")
        if queued:
            conn.execute(
                "UPDATE peer_mentors SET status = 'paused' WHERE id IN"
                " (SELECT id FROM peer_mentors ORDER BY id LIMIT %s)",
                [queued],
            )
        conn.execute("VACUUM ANALYZE")
        # The set-up's own WAL is flushed now (as pgbench does before a run), so that a
        # checkpoint it would have started does not fall inside the measured work.
        conn.execute("CHECKPOINT")
    return url


def quiet_scheduler(url: str) -> None:
    """Nothing scheduled falls due while a benchmark runs a worker process: at start the
    nightly jobs would pause half the seeded mentors (their certificates are spread around
    today) and read every contact, in the middle of what is being measured."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scheduled_runs (job, slot, status, finished_at)"
            " SELECT job, '2999-01-01', 'succeeded', now() FROM unnest(%s::text[]) AS job",
            [["expiry_check", "reconcile", "health_check", "compensation"]],
        )


@contextlib.contextmanager
def sandbox_process() -> Iterator[tuple[dict[str, str], AdminClient]]:
    """The sandbox in its own process (as in production, Dynamics is not in the worker's
    process), with the settings that point at it and its control client."""
    folder = Path(tempfile.mkdtemp(prefix="hlfsync-bench-sandbox-"))
    env_file = folder / "sandbox.env"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env["HLFSYNC_DATA_DIR"] = str(folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hlfsync", "sandbox", "--port", "0", "--env-file", str(env_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    global _sandbox_pid  # noqa: PLW0603 - one sandbox at a time per benchmark process
    _sandbox_pid = proc.pid
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "listening on ...": the env file is written by then
        values = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        with AdminClient(values["HLFSYNC_DYNAMICS_URL"],
                         verify=values["HLFSYNC_DYNAMICS_CA_BUNDLE"]) as admin:  # fmt: skip
            yield values, admin
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


FCM_SETTINGS = ("HLFSYNC_FCM_PROJECT_ID", "HLFSYNC_FCM_CREDENTIALS", "HLFSYNC_FCM_ENDPOINT",
                "HLFSYNC_FCM_TOKEN_URI")  # fmt: skip


@contextlib.contextmanager
def sandboxes_apart() -> Iterator[tuple[dict[str, str], AdminClient]]:
    """Dynamics and FCM in two sandbox processes, as in production they are two services on
    different machines: a night's 115,000 pushes then do not queue in the same server loop as
    the PATCHes being timed. The settings point Dynamics at the first and FCM at the second and
    trust both throw-away CAs (one bundle file); the control client is the first's."""
    global _sandbox_pid  # noqa: PLW0603 - sandbox_cpu_s reads the Dynamics sandbox
    with sandbox_process() as (dynamics, admin):
        first_pid = _sandbox_pid
        with sandbox_process() as (push, _):
            _sandbox_pid = first_pid
            folder = Path(tempfile.mkdtemp(prefix="hlfsync-bench-ca-"))
            bundle = folder / "both-cas.pem"
            bundle.write_text(
                Path(dynamics["HLFSYNC_DYNAMICS_CA_BUNDLE"]).read_text()
                + Path(push["HLFSYNC_DYNAMICS_CA_BUNDLE"]).read_text()
            )
            env = dynamics | {k: push[k] for k in FCM_SETTINGS}
            env["HLFSYNC_DYNAMICS_CA_BUNDLE"] = str(bundle)
            yield env, admin


def mirror_contacts(url: str, admin: AdminClient) -> None:
    """Create every mentor's contact in the sandbox, listed as its status says."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT dynamics_contact_id, status = 'active' FROM peer_mentors"
            " WHERE dynamics_contact_id IS NOT NULL"
        ).fetchall()
    admin.delete_contacts()
    admin.put_contacts([{"contactid": str(c), "listed": bool(listed)} for c, listed in rows])


def sandbox_cpu_s() -> float:
    """CPU seconds the running sandbox process has used so far (Linux /proc)."""
    if _sandbox_pid is None:
        return 0.0
    fields = Path(f"/proc/{_sandbox_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def speed_s() -> float:
    """How fast this machine runs PostgreSQL right now: seconds to insert 50,000 indexed rows
    into a table made for it (all rolled back), the best of three. The project's machine is a VM
    on a shared host where the same work takes up to twice as long from one hour to the
    next (docs/performance.md); printed beside a figure, it tells a slow window from a slower
    hlfsync. Lower is faster."""
    best = float("inf")
    with psycopg.connect(server_url()) as conn:
        for _ in range(3):
            started = time.perf_counter()
            conn.execute("CREATE TABLE speed_probe (id bigint PRIMARY KEY, k text, v jsonb)")
            conn.execute("CREATE INDEX ON speed_probe (k)")
            conn.execute(
                "INSERT INTO speed_probe SELECT i, md5(i::text), jsonb_build_object('i', i)"
                "  FROM generate_series(1, 50000) AS i"
            )
            conn.rollback()
            best = min(best, time.perf_counter() - started)
    return best


def wal_segments_created() -> int | None:
    """How many WAL segments the server has created since it started (PostgreSQL 18 counts
    them in `pg_stat_io`, one write each in the `init` context); None before 18."""
    with psycopg.connect(server_url(), autocommit=True) as conn:
        try:
            row = conn.execute(
                "SELECT sum(writes)::int FROM pg_stat_io WHERE object = 'wal' AND context = 'init'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # PostgreSQL 15: no pg_stat_io
            return None
    return None if row is None or row[0] is None else row[0]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
