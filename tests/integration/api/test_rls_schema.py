"""The RLS migration itself: every table locked down on a fresh database, and the service side
working as a plain owner role (no superuser, no BYPASSRLS), as on a customer's PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from hlfsync import testing as f
from hlfsync.core import outcome
from hlfsync.core.errors import ConfigError
from hlfsync.db import migrate, operations, status
from hlfsync.db.pool import open_pool
from hlfsync.db.queue import CallFacts, OperationStore

OWNER = f"hlfsync_owner_{os.getpid()}"


def _fresh(pg_admin_url: str, name: str, owner: str | None = None) -> str:
    name = f"{name}_{os.getpid()}"  # xdist workers may share a server (HLFSYNC_TEST_DATABASE_URL)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        admin.execute(drop.format(sql.Identifier(name)))
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            create += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        admin.execute(create)
    return conninfo.make_conninfo(pg_admin_url, dbname=name, user=owner or None)


def test_every_table_has_row_level_security_enabled_and_forced(pg_admin_url: str) -> None:
    """After migrating an empty database, no table in public is without forced RLS."""
    url = _fresh(pg_admin_url, "rls_fresh")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.upgrade(conn)
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        ).fetchall()
    assert rows, "no tables"
    assert [r[0] for r in rows if not (r[1] and r[2])] == []


@pytest.fixture
def owner_role(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A login role that owns its database and is neither superuser nor BYPASSRLS (the
    template's migration has created the cluster-wide API roles it joins)."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(OWNER)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(OWNER))
        )
        # What Supabase gives its `postgres` role, and 0001 asks of any non-superuser.
        admin.execute(sql.SQL("GRANT anon, authenticated TO {}").format(sql.Identifier(OWNER)))
    yield OWNER
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(f"rls_owner_{os.getpid()}")
            )
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(OWNER)))


def test_a_plain_owner_not_in_service_role_is_told_what_to_grant(
    pg_admin_url: str, owner_role: str
) -> None:
    """Without BYPASSRLS or service_role, the migration stops with the GRANT to run."""
    url = _fresh(pg_admin_url, "rls_owner", owner=owner_role)
    with (
        psycopg.connect(url) as conn,
        pytest.raises(ConfigError, match=f"run: GRANT service_role TO {owner_role}"),
    ):
        migrate.upgrade(conn)


def test_an_owner_with_bypassrls_needs_no_membership(pg_admin_url: str, owner_role: str) -> None:
    """Like Supabase's `postgres` (BYPASSRLS, not superuser): the migration applies as it is and
    the owner reads every row."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} BYPASSRLS").format(sql.Identifier(owner_role)))
    url = _fresh(pg_admin_url, "rls_owner", owner=owner_role)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate.upgrade(conn)
        member = conn.execute("SELECT pg_has_role(current_user, 'service_role', 'MEMBER')")
        assert member.fetchone() == (False,)
        f.make_mentor(conn, f.make_org(conn))
        assert conn.execute("SELECT count(*) FROM peer_mentors").fetchone() == (1,)


async def test_the_worker_side_works_as_a_plain_owner_in_service_role(
    pg_admin_url: str, owner_role: str
) -> None:
    """As a non-superuser owner in service_role, migrations, the outbox, claims, outcomes, dead
    letters with alerts, re-queues and the status snapshot all work with RLS forced."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("GRANT service_role TO {}").format(sql.Identifier(owner_role)))
    url = _fresh(pg_admin_url, "rls_owner", owner=owner_role)
    with psycopg.connect(url, autocommit=True) as conn:
        me = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert me == (False, False)
        migrate.upgrade(conn)
        assert migrate.pending(conn) == []
        org = f.make_org(conn)
        chapter = f.make_chapter(conn, org)
        mentors = [f.make_mentor(conn, org, chapters=(chapter,)) for _ in range(3)]
        f.make_user(conn, org, coordinates=(chapter,), token="device-1")
        conn.execute("UPDATE peer_mentors SET status = 'paused'")  # the outbox trigger
        assert conn.execute("SELECT count(*) FROM sync_queue").fetchone() == (3,)
    await _worker_outcomes(url, mentors)
    with psycopg.connect(url, autocommit=True) as conn:
        letters = operations.list_dead_letters(conn, status="open", limit=10)
        assert len(letters) == 1
        assert operations.requeue(conn, [letters[0]["id"]], actor="ops") != []
        forced = operations.force_sync(conn, mentors[:1], actor="ops")
        assert len(forced.queued) == 1
        snapshot = status.read(conn)
        assert snapshot.queue["succeeded"] == 1
        assert snapshot.pending_migrations == []
        assert conn.execute("SELECT count(*) FROM alert_deliveries").fetchone() == (1,)


async def _worker_outcomes(url: str, mentors: list[Any]) -> None:
    pool = await open_pool(url, max_size=2)
    try:
        store = OperationStore(pool, worker_id="owner-test")
        now = datetime.now(UTC) + timedelta(seconds=1)
        jobs = await store.claim(limit=10, now=now, lease_s=30)
        assert {j.mentor_id for j in jobs} == set(mentors)
        ok, retry, dead = jobs
        assert await store.record(ok, outcome.Succeeded(), now=now, facts=CallFacts(12.0, 204))
        assert await store.record(
            retry, outcome.RetryAt(now + timedelta(seconds=2), "HTTP 503", spend_attempt=True),
            now=now, facts=CallFacts(30.0, 503),
        )  # fmt: skip
        assert await store.record(
            dead, outcome.DeadLettered("requires_investigation: HTTP 400", spent=True), now=now,
            facts=CallFacts(8.0, 400),
        )  # fmt: skip
        async with pool.connection() as conn:
            alerts = await (await conn.execute(
                "SELECT count(*) FROM alerts WHERE kind = 'sync_failure' AND mentor_id = %s",
                [dead.mentor_id],
            )).fetchone()  # fmt: skip
        assert alerts == (1,)
    finally:
        await pool.close()
