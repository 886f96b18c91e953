"""Shared set-up for benchmarks: a PostgreSQL (embedded unless HLFSYNC_DATABASE_URL), a fresh
database per scenario, seeded mentors, a queue filled through the real outbox trigger."""

from __future__ import annotations

import os
import platform
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from hlfsync.db import connect, embedded, migrate, seed

_server_url: str | None = None


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
        # Everyone active with a contact, so each queued operation is a real call.
        conn.execute("UPDATE peer_mentors SET status = 'active', status_reason = NULL")
        conn.execute("UPDATE peer_mentors SET dynamics_contact_id = gen_random_uuid()"
                     " WHERE dynamics_contact_id IS NULL")  # fmt: skip
        # Activating the paused ones queued restores: start from an empty queue.
        conn.execute("DELETE FROM sync_queue")
        if queued:
            conn.execute(
                "UPDATE peer_mentors SET status = 'paused' WHERE id IN"
                " (SELECT id FROM peer_mentors ORDER BY id LIMIT %s)",
                [queued],
            )
        conn.execute("VACUUM ANALYZE")
    return url


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


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
