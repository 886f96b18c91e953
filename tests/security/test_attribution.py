"""Every change made as `authenticated` is the JWT subject's, whatever the session's settings
say; only the service names another actor. status_reason cannot fake the expiry lifecycle, and
every change of it is audited. As the real roles (PostgREST-style SQL)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.api.world import World, as_user

Conn = psycopg.Connection[Any]


def _as(conn: Conn, world: World, user: str, **settings: str) -> None:
    as_user(conn, world.users[user])
    for name, value in settings.items():
        conn.execute("SELECT set_config(%s, %s, true)", [f"hlfsync.{name}", value])


def _last_audit(conn: Conn, mentor: Any) -> tuple[str, str, dict[str, Any]]:
    row = conn.execute(
        "SELECT event_type, actor, details FROM audit_log WHERE mentor_id = %s"
        " ORDER BY id DESC LIMIT 1",
        [mentor],
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def _reason(conn: Conn, mentor: Any) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT status, status_reason FROM peer_mentors WHERE id = %s", [mentor]
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_coordinator_cannot_name_another_actor(conn: Conn, world: World) -> None:
    """hlfsync.actor and hlfsync.reason set by a coordinator are ignored: the audit row names
    the JWT subject and the reason is "manual"."""
    mentor = world.mentors["m_a1"]
    with conn.transaction():
        _as(conn, world, "coord_a1", actor="expiry-check", reason="certification_expired")
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    event, actor, details = _last_audit(conn, mentor)
    assert (event, actor) == ("status_changed", str(world.users["coord_a1"]))
    assert details["reason"] == "manual"
    assert _reason(conn, mentor) == ("paused", "manual")


def test_the_expiry_actor_is_the_caller_under_authenticated(conn: Conn, world: World) -> None:
    """expiry_actor() (renewal history, renewal audit) ignores hlfsync.actor for the API roles
    and honours it for the service."""
    with conn.transaction(force_rollback=True):
        _as(conn, world, "admin_a", actor="expiry-check")
        assert conn.execute("SELECT expiry_actor()").fetchone() == (str(world.users["admin_a"]),)
    with conn.transaction(force_rollback=True):
        conn.execute("SELECT set_config('hlfsync.actor', 'expiry-check', true)")
        assert conn.execute("SELECT expiry_actor()").fetchone() == ("expiry-check",)


def test_a_definer_function_audits_the_caller_not_the_session(conn: Conn, world: World) -> None:
    """A force sync through api_force_sync records the caller even with hlfsync.actor set."""
    mentor = world.mentors["m_a2"]
    with conn.transaction():
        _as(conn, world, "coord_a23", actor="break-glass")
        conn.execute("SELECT * FROM api_force_sync(%s)", [mentor])
    event, actor, _ = _last_audit(conn, mentor)
    assert (event, actor) == ("sync_requested", str(world.users["coord_a23"]))


def test_the_service_still_names_its_actor(conn: Conn, world: World) -> None:
    """Outside the API roles, hlfsync.actor and hlfsync.reason are taken as given."""
    mentor = world.mentors["m_b1"]
    with conn.transaction():
        conn.execute("SELECT set_config('hlfsync.actor', 'reconcile', true)")
        conn.execute("SELECT set_config('hlfsync.reason', 'contract_ended', true)")
        conn.execute("UPDATE peer_mentors SET status = 'inactive' WHERE id = %s", [mentor])
    event, actor, details = _last_audit(conn, mentor)
    assert (event, actor, details["reason"]) == ("status_changed", "reconcile", "contract_ended")


@pytest.mark.parametrize("reason", ["certification_expired", "certification_renewed"])
def test_a_coordinator_cannot_write_a_lifecycle_reason(
    conn: Conn, world: World, reason: str
) -> None:
    """Setting an expiry-lifecycle reason, with or without a status change, is refused."""
    mentor = world.mentors["m_a1"]
    for statement in (
        "UPDATE peer_mentors SET status_reason = %s WHERE id = %s",
        "UPDATE peer_mentors SET status = 'paused', status_reason = %s WHERE id = %s",
    ):
        with conn.transaction(force_rollback=True):
            _as(conn, world, "coord_a1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.encode(), [reason, mentor])


def test_a_manual_pause_is_not_relisted_by_a_renewal(conn: Conn, world: World) -> None:
    """Paused by hand (even with hlfsync.reason faked), a renewal leaves the mentor paused."""
    mentor = world.mentors["m_a1"]
    with conn.transaction():
        _as(conn, world, "coord_a1", reason="certification_expired")
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    conn.execute(
        "UPDATE certifications SET expires_on = expires_on + 365 WHERE mentor_id = %s", [mentor]
    )
    assert _reason(conn, mentor) == ("paused", "manual")


def test_an_expiry_pause_cannot_be_relabelled_but_is_restored_by_renewal(
    conn: Conn, world: World
) -> None:
    """The other way round: a coordinator cannot turn an expiry pause into a manual one (the
    renewal would then not relist), while the service's renewal does relist it."""
    mentor = world.mentors["m_a12"]
    today = date.today()
    conn.execute(
        "UPDATE certifications SET issued_on = %s, expires_on = %s WHERE mentor_id = %s",
        [today - timedelta(days=400), today - timedelta(days=1), mentor],
    )
    conn.execute("SELECT * FROM expiry_pause_expired(%s, %s)", [today, "expiry-check"])
    assert _reason(conn, mentor) == ("paused", "certification_expired")
    with conn.transaction(force_rollback=True):
        _as(conn, world, "coord_a1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE peer_mentors SET status_reason = 'manual' WHERE id = %s", [mentor])
    conn.execute(
        "UPDATE certifications SET expires_on = %s WHERE mentor_id = %s",
        [today + timedelta(days=365), mentor],
    )
    assert _reason(conn, mentor) == ("active", "certification_renewed")


def test_a_reason_change_alone_is_audited(conn: Conn, world: World) -> None:
    """A coordinator rewording a manual pause's reason leaves a status_reason_changed row with
    the old and new reason and the coordinator as actor."""
    mentor = world.mentors["m_a3"]
    with conn.transaction():
        _as(conn, world, "coord_a23")
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    with conn.transaction():
        _as(conn, world, "coord_a23")
        conn.execute(
            "UPDATE peer_mentors SET status_reason = 'on leave until May' WHERE id = %s", [mentor]
        )
    event, actor, details = _last_audit(conn, mentor)
    assert (event, actor) == ("status_reason_changed", str(world.users["coord_a23"]))
    assert (details["old_reason"], details["reason"]) == ("manual", "on leave until May")
