"""What `authenticated` may call (Supabase exposes it over RPC) answers the same for an unknown
id and for an id outside the caller's scope, names nothing foreign, and counts only the
caller's own. PostgREST-style: SET ROLE authenticated with request.jwt.claims."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.integration.api.world import STAFF, World, as_user

Conn = psycopg.Connection[Any]
CALLS = {
    "api_force_sync": "SELECT * FROM api_force_sync(%s)",
    "api_requeue_dead_letter": "SELECT * FROM api_requeue_dead_letter(%s)",
    "api_resolve_dead_letter": "SELECT api_resolve_dead_letter(%s, 'done by hand')",
    "api_require_mentor": "SELECT api_require_mentor(%s)",
    "can_see_mentor": "SELECT can_see_mentor(%s)",
}
UNKNOWN_LETTER = 2**62


def _answer(conn: Conn, world: World, user: str, call: str, arg: Any) -> tuple[str, str]:
    """(SQLSTATE, message) or ("ok", repr of the rows) of one call as `user`."""
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users[user])
        try:
            return "ok", repr(conn.execute(CALLS[call].encode(), [arg]).fetchall())
        except psycopg.Error as exc:
            return str(exc.sqlstate), str(exc.diag.message_primary)


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("user", ["coord_a1", "coord_a23", "admin_a", "coord_b1", "idle_a"])
def test_unknown_and_out_of_scope_answer_alike(
    conn: Conn, world: World, user: str, call: str
) -> None:
    """For every id the caller may not see, the answer equals the one for an id that does not
    exist, and no answer contains a mentor id or a name."""
    letters = "dead_letter" in call
    unknown: Any = UNKNOWN_LETTER if letters else uuid.uuid4()
    expected = _answer(conn, world, user, call, unknown)
    assert expected[0] != "ok" or call == "can_see_mentor", expected
    for name in world.mentors:
        if name in world.mentor_names(user):
            continue
        arg = world.dead_letters[name] if letters else world.mentors[name]
        got = _answer(conn, world, user, call, arg)
        assert got == expected, (name, got)
        assert all(str(m) not in got[1] for m in world.mentors.values())


@pytest.mark.parametrize("user", sorted(STAFF))
def test_queue_totals_count_only_the_callers_mentors(conn: Conn, world: World, user: str) -> None:
    """api_queue_overview's totals cover the caller's mentors: each world mentor has one open
    dead letter and one dead-lettered operation, so the counts equal the mentors they see."""
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users[user])
        row = conn.execute("SELECT queue, open_dead_letters FROM api_queue_overview()").fetchone()
    assert row is not None
    seen = len(world.mentor_names(user))
    assert (row[0].get("dead_lettered"), row[1]) == (seen, seen)


def test_scheduled_run_statistics_are_not_staff_reading(conn: Conn, world: World) -> None:
    """Staff see which job ran when, but not its statistics or error, where reconciliation
    keeps samples of every organisation's mentors and contacts."""
    conn.execute(
        "UPDATE scheduled_runs SET stats = jsonb_build_object('divergent_sample', %s::text)",
        [str(world.mentors["m_b1"])],
    )
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users["admin_a"])
        assert conn.execute("SELECT job, status FROM scheduled_runs").fetchall()
    for column in ("stats", "error", "worker"):
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users["admin_a"])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT {column} FROM scheduled_runs".encode())


@pytest.mark.parametrize("user", sorted(STAFF | {"idle_a"}))
def test_dashboard_functions_answer_with_the_callers_mentors_only(
    conn: Conn, world: World, user: str
) -> None:
    """The dashboard's definer functions (0014) see exactly the caller's mentors: the visible
    set, a name search over everyone, the counts (each world mentor has one open dead letter)
    and the hourly chart, which names no mentor at all."""
    mine = {world.mentors[name] for name in world.mentor_names(user)}
    with conn.transaction(force_rollback=True):
        as_user(conn, world.users[user])
        visible = {r[0] for r in conn.execute("SELECT auth_visible_mentors()").fetchall()}
        named = {r[0] for r in conn.execute("SELECT auth_mentors_named('%')").fetchall()}
        by_status = {r[0] for r in conn.execute(
            "SELECT auth_mentors_of_status(s, %s, 100, 100) FROM unnest(%s::text[]) AS s",
            [uuid.UUID(int=0), ["active", "paused", "inactive"]],
        ).fetchall()}  # fmt: skip
        counts = conn.execute("SELECT open_dead_letters FROM dashboard_counts()").fetchone()
        hourly = repr(conn.execute("SELECT * FROM dashboard_hourly(now(), 24)").fetchall())
        classes = [r[0] for r in conn.execute("SELECT auth_visible_classes()").fetchall()]
        conn.execute("RESET ROLE")
        of_classes = {r[0] for r in conn.execute(
            "SELECT mentor_id FROM mentor_class_members WHERE class_id = ANY(%s)", [classes]
        ).fetchall()}  # fmt: skip
    assert visible == mine
    assert of_classes == mine
    assert by_status == mine
    assert named == mine
    assert counts is not None
    assert counts[0] == len(mine)
    assert all(str(m) not in hourly for m in world.mentors.values())
