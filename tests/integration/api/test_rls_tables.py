"""Row-level security, table by table, as the real `authenticated` role with the API's claims.

Superusers bypass RLS even when forced, so every read here runs under SET ROLE authenticated.
Each user must see exactly the rows the rules give them: compared as sets of ids, not counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.integration.api.world import STAFF, USERS, World, as_user, ids

Expect = Callable[[World, str], set[Any]]


def _mentors(w: World, u: str) -> set[Any]:
    return w.visible_mentors(u)


def _alerts(w: World, u: str) -> set[Any]:
    # Operators' alerts (the breaker's) belong to no organisation: no API user sees them.
    return {str(m) for m in w.visible_mentors(u)}


def _own(w: World, u: str) -> set[Any]:
    return {w.users[u]} if w.org_of(u) else set()


def _app_users(w: World, u: str) -> set[Any]:
    admin_of = w.admin_org(u)
    same_org = {w.users[o] for o in USERS if admin_of and w.org_of(o) == admin_of}
    return _own(w, u) | same_org


def _orgs(w: World, u: str) -> set[Any]:
    return {w.org_of(u)} - {None}


def _staff_only(rows: set[Any]) -> Expect:
    return lambda _w, u: rows if u in STAFF else set()


# table -> (the ids query, what each user should get)
# Tables the API roles may not read at all (tests below check the refusal).
SERVICE_ONLY = {
    "schema_migrations", "sign_in_codes", "operator_notices",
    # The overview's classes and kept chart hours (0019): read through the dashboard's
    # functions only.
    "mentor_classes", "mentor_class_members", "mentor_class_generation", "chart_hours",
    "chart_hour_classes",
}  # fmt: skip
TABLES: dict[str, tuple[str, Expect]] = {
    "peer_mentors": ("SELECT id FROM peer_mentors", _mentors),
    "certifications": ("SELECT mentor_id FROM certifications", _mentors),
    "cert_expiry_reminders": ("SELECT mentor_id FROM cert_expiry_reminders", _mentors),
    "sync_queue": ("SELECT mentor_id FROM sync_queue", _mentors),
    "dead_letter_queue": ("SELECT mentor_id FROM dead_letter_queue", _mentors),
    "listing_confirmations": ("SELECT mentor_id FROM listing_confirmations", _mentors),
    "audit_log": ("SELECT coalesce(mentor_id::text, event_type) FROM audit_log",
                  lambda w, u: {str(m) for m in w.visible_mentors(u)}),
    "alerts": ("SELECT coalesce(mentor_id::text, kind) FROM alerts", _alerts),
    "alert_deliveries": ("SELECT user_id FROM alert_deliveries", _own),
    "device_tokens": ("SELECT user_id FROM device_tokens", _own),
    "chapters": ("SELECT id FROM chapters", lambda w, u: w.visible_chapters(u)),
    "chapter_memberships": (
        "SELECT mentor_id, chapter_id FROM chapter_memberships",
        lambda w, u: {(m, c) for m, c in w.memberships() if c in w.visible_chapters(u)},
    ),
    "coordinator_chapters": (
        "SELECT user_id, chapter_id FROM coordinator_chapters",
        lambda w, u: {(p, c) for p, c in w.coordinations() if c in w.visible_chapters(u)},
    ),
    "app_users": ("SELECT id FROM app_users", _app_users),
    "organization_admins": (
        "SELECT user_id, organization_id FROM organization_admins",
        lambda w, u: {(w.users[u], w.admin_org(u))} if w.admin_org(u) else set(),
    ),
    "organizations": ("SELECT id FROM organizations", _orgs),
    "org_settings": ("SELECT organization_id FROM org_settings", _orgs),
    "circuit_breakers": ("SELECT name FROM circuit_breakers", _staff_only({"dynamics"})),
    "credential_health": ("SELECT name FROM credential_health", _staff_only({"dynamics"})),
    "scheduled_runs": ("SELECT job FROM scheduled_runs", _staff_only({"expiry_check"})),
}  # fmt: skip


@pytest.mark.parametrize("user", USERS)
def test_each_user_sees_exactly_their_rows_in_every_table(
    conn: psycopg.Connection[Any], world: World, user: str
) -> None:
    """Under the caller's claims, every table yields exactly the ids the rules give that user."""
    seen: dict[str, set[Any]] = {}
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users[user])
        for table, (query, _) in TABLES.items():
            seen[table] = ids(conn, query)
    expected = {table: expect(world, user) for table, (_, expect) in TABLES.items()}
    assert seen == expected


def test_the_matrix_covers_every_table_but_the_migration_record(
    conn: psycopg.Connection[Any],
) -> None:
    """No table escapes the matrix: a new table must say here who sees its rows."""
    tables = ids(conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables - SERVICE_ONLY == set(TABLES)


def test_the_write_functions_rule_agrees_with_the_policy(
    conn: psycopg.Connection[Any], world: World
) -> None:
    """can_see_mentor (used by the write functions) says yes exactly where the policy does."""
    for user in USERS:
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users[user])
            allowed = {
                m for m in world.mentors.values()
                if conn.execute("SELECT can_see_mentor(%s)", [m]).fetchone() == (True,)
            }  # fmt: skip
        assert allowed == world.visible_mentors(user), user


def test_anon_reads_nothing(conn: psycopg.Connection[Any], world: World) -> None:
    """The anonymous role is refused every table outright."""
    for table in [*TABLES, *SERVICE_ONLY]:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE anon")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1".encode())


def test_the_migration_record_is_not_the_api_roles_business(
    conn: psycopg.Connection[Any], world: World
) -> None:
    """schema_migrations and the sign-in codes are refused to signed-in users too."""
    for table in SERVICE_ONLY:
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users["admin_a"])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table}".encode())
