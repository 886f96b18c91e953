"""Writes under row-level security: tables are read-only to the API roles; the SECURITY DEFINER
functions act within the caller's scope only, and audit the caller as the actor."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.integration.api.test_rls_tables import TABLES
from tests.integration.api.world import USERS, World, as_user, ids


@pytest.mark.parametrize(
    "statement",
    ["INSERT INTO {} DEFAULT VALUES", "UPDATE {} SET {} = {}", "DELETE FROM {}"],
)
def test_no_table_takes_a_direct_write_from_a_signed_in_user(
    conn: psycopg.Connection[Any], world: World, statement: str
) -> None:
    """INSERT, UPDATE and DELETE are refused on every table (status is the one column granted)."""
    for table in TABLES:
        column = "full_name" if table == "peer_mentors" else _plain_column(conn, table)
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users["admin_a"])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.format(table, column, column).encode())


def _plain_column(conn: psycopg.Connection[Any], table: str) -> str:
    """A column UPDATE may name (not an identity column)."""
    row = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped AND attidentity = '' ORDER BY attnum LIMIT 1",
        [table],
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_status_change_by_a_coordinator_queues_its_sync_as_them(
    conn: psycopg.Connection[Any], world: World
) -> None:
    """A coordinator pausing their mentor (as the app does) queues the remove, audited as them."""
    mentor, user = world.mentors["m_a1"], world.users["coord_a1"]
    with conn.transaction():
        as_user(conn, user)
        updated = conn.execute(
            "UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor]
        ).rowcount
    assert updated == 1
    queued = conn.execute(
        "SELECT operation, status FROM sync_queue WHERE mentor_id = %s ORDER BY id DESC LIMIT 1",
        [mentor],
    ).fetchone()
    assert queued == ("remove", "pending")
    actor = conn.execute(
        "SELECT actor FROM audit_log WHERE mentor_id = %s AND event_type = 'status_changed'",
        [mentor],
    ).fetchone()
    assert actor == (str(user),)


@pytest.mark.parametrize("user", USERS)
def test_a_status_change_outside_scope_touches_nothing(
    conn: psycopg.Connection[Any], world: World, user: str
) -> None:
    """Updating a mentor one may not see changes no row and queues nothing."""
    before = ids(conn, "SELECT id FROM sync_queue")
    with conn.transaction():
        as_user(conn, world.users[user])
        for mentor in world.invisible_mentors(user):
            assert (
                conn.execute(
                    "UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor]
                ).rowcount
                == 0
            )
    assert ids(conn, "SELECT id FROM sync_queue") == before


@pytest.mark.parametrize("user", USERS)
def test_the_write_functions_refuse_everything_outside_scope(
    conn: psycopg.Connection[Any], world: World, user: str
) -> None:
    """Force sync, re-queue and resolve raise insufficient_privilege for any mentor out of scope,
    and change nothing."""
    before = ids(conn, "SELECT id, status, updated_at FROM sync_queue")
    letters = ids(conn, "SELECT id, status, updated_at FROM dead_letter_queue")
    names = [n for n, m in world.mentors.items() if m in world.invisible_mentors(user)]
    calls = [
        *[("SELECT * FROM api_force_sync(%s)", [world.mentors[n]]) for n in names],
        *[("SELECT * FROM api_requeue_dead_letter(%s)", [world.dead_letters[n]]) for n in names],
        *[("SELECT api_resolve_dead_letter(%s, 'x')", [world.dead_letters[n]]) for n in names],
        ("SELECT * FROM api_requeue_dead_letter(%s)", [999_999]),
    ]
    for query, params in calls:
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users[user])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query.encode(), params)
    assert ids(conn, "SELECT id, status, updated_at FROM sync_queue") == before
    assert ids(conn, "SELECT id, status, updated_at FROM dead_letter_queue") == letters


def test_the_write_functions_act_in_scope_with_the_caller_as_actor(
    conn: psycopg.Connection[Any], world: World
) -> None:
    """In scope, force sync, re-queue and resolve work and the audit names the caller."""
    user = world.users["coord_a23"]
    with conn.transaction():
        as_user(conn, user)
        forced = conn.execute("SELECT * FROM api_force_sync(%s)", [world.mentors["m_a3"]])
        assert forced.fetchone() is not None
        requeued = conn.execute(
            "SELECT * FROM api_requeue_dead_letter(%s)", [world.dead_letters["m_a12"]]
        ).fetchone()
        assert requeued is not None
        resolved = conn.execute(
            "SELECT api_resolve_dead_letter(%s, 'fixed in Dynamics by hand')",
            [world.dead_letters["m_a2"]],
        ).fetchone()
        assert resolved == (True,)
    actors = ids(
        conn,
        "SELECT event_type, actor FROM audit_log WHERE actor <> 'test' AND actor <> 'worker'"
        " AND mentor_id IS NOT NULL",
    )
    assert actors == {
        ("sync_requested", str(user)),
        ("dead_letter_requeued", str(user)),
        ("dead_letter_resolved", str(user)),
    }


def test_the_service_functions_are_not_callable_by_signed_in_users(
    conn: psycopg.Connection[Any], world: World
) -> None:
    """enqueue_sync and friends take any actor, so only the service may call them directly."""
    for query in (
        "SELECT * FROM enqueue_sync(NULL, 'force', 10, 'someone else')",
        "SELECT * FROM requeue_dead_letters(NULL, 'someone else')",
        "SELECT resolve_dead_letter(1, 'x', 'someone else')",
    ):
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users["admin_a"])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query.encode())


@pytest.mark.parametrize("user", USERS)
def test_queue_totals_are_for_staff_only(
    conn: psycopg.Connection[Any], world: World, user: str
) -> None:
    """Queue totals answer coordinators and admins, over their own mentors only; others refused."""
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users[user])
        if user in {"idle_a", "stranger"}:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM api_queue_overview()")
        else:
            row = conn.execute("SELECT open_dead_letters FROM api_queue_overview()").fetchone()
            assert row == (len(world.mentor_names(user)),)
