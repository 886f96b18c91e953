"""Alerts belong to one organisation or to the service's operators: an operators' alert (breaker
open, credentials failing, the compensation check's findings) reaches no organisation's users,
and a mentor's alert is pushed only inside the mentor's organisation, stray rows or not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from hlfsync import testing as f
from hlfsync.db.queries import q
from tests.integration.api.world import USERS, World, as_user, ids

Conn = psycopg.Connection[Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _admin_alert(conn: Conn, kind: str, key: str) -> tuple[Any, ...]:
    row = conn.execute(
        q("raise_admin_alert"),
        {"kind": kind, "key": key, "payload": Jsonb({"type": "x"}), "details": Jsonb({}),
         "now": _now()},
    ).fetchone()  # fmt: skip
    assert row is not None
    return tuple(row)


def test_operators_alerts_reach_no_organisation(conn: Conn, world: World) -> None:
    """Breaker and credential alerts are the operators': audience `operators`, no delivery to
    any organisation's device, invisible to every signed-in user."""
    for kind in ("breaker_open", "auth_failure"):
        alert_id, deliveries, _ = _admin_alert(conn, kind, f"sec:{kind}")
        assert deliveries == 0
        assert ids(conn, "SELECT audience FROM alerts WHERE id = %s", [alert_id]) == {"operators"}
        assert ids(conn, "SELECT id FROM alert_deliveries WHERE alert_id = %s", [alert_id]) == set()
    for user in USERS:
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users[user])
            assert ids(conn, "SELECT kind FROM alerts WHERE audience = 'operators'") == set()


def test_compensation_findings_go_to_operators_only(conn: Conn, world: World) -> None:
    """Duplicate findings (they list mentor ids of any organisation) raise an operators' alert
    with no push, which no administrator can read."""
    mentor = world.mentors["m_b1"]
    conn.execute("ALTER TABLE cert_expiry_reminders DROP CONSTRAINT"
                 " cert_expiry_reminders_mentor_id_threshold_day_certification_key")  # fmt: skip
    conn.execute(
        "INSERT INTO cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)"
        " VALUES (%s, 30, current_date + 20)",
        [mentor],
    )
    findings, alert_id, deliveries = conn.execute(
        "SELECT * FROM raise_compensation_alert()"
    ).fetchone() or (None, None, None)
    assert (findings, deliveries) == (1, 0)
    assert ids(conn, "SELECT id FROM alert_deliveries WHERE alert_id = %s", [alert_id]) == set()
    for user in ("admin_a", "admin_b"):
        with conn.transaction(force_rollback=True):
            as_user(conn, world.users[user])
            assert ids(conn, "SELECT id FROM alerts WHERE kind = 'compensation'") == set()


def test_a_mentors_alert_is_pushed_inside_its_organisation_only(conn: Conn, world: World) -> None:
    """m_stray (org B, in no chapter) cannot be put in org A's chapter A1 (0017), so its alert
    goes to org B's admin and never to org A's coordinator; the single and the batch form
    agree."""
    mentor = world.mentors["m_stray"]
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(
            "INSERT INTO chapter_memberships (mentor_id, chapter_id) VALUES (%s, %s)",
            [mentor, world.chapters["A1"]],
        )
    single = conn.execute(
        q("raise_mentor_alert"),
        {"kind": "sync_failure", "key": "sec:stray", "mentor": mentor,
         "payload": Jsonb({"type": "hlf_sync_failure"}), "details": Jsonb({}), "now": _now()},
    ).fetchone()  # fmt: skip
    assert single is not None
    batch = conn.execute(
        "SELECT alert_id FROM raise_mentor_alerts('sync_failure', NULL, ARRAY[%s]::uuid[],"
        " ARRAY['sec:stray-batch'], ARRAY[%s::jsonb], ARRAY['{}'::jsonb])",
        [mentor, json.dumps({"type": "hlf_sync_failure"})],
    ).fetchone()
    assert batch is not None
    for alert_id in (single[0], batch[0]):
        users = ids(conn, "SELECT user_id FROM alert_deliveries WHERE alert_id = %s", [alert_id])
        assert users == {world.users["admin_b"]}


def test_a_coordinator_cannot_be_linked_to_a_foreign_chapter(conn: Conn, world: World) -> None:
    """A coordination row joining an org B user to chapter A1 is refused (0017), so org A's
    alert reaches A1's own coordinator and nobody of org B."""
    stray = f.make_user(conn, world.orgs["B"], token="device-stray-coordinator")
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(
            "INSERT INTO coordinator_chapters (user_id, chapter_id) VALUES (%s, %s)",
            [stray, world.chapters["A1"]],
        )
    row = conn.execute(
        q("raise_mentor_alert"),
        {"kind": "sync_failure", "key": "sec:a1", "mentor": world.mentors["m_a1"],
         "payload": Jsonb({"type": "hlf_sync_failure"}), "details": Jsonb({}), "now": _now()},
    ).fetchone()  # fmt: skip
    assert row is not None
    users = ids(conn, "SELECT user_id FROM alert_deliveries WHERE alert_id = %s", [row[0]])
    assert users == {world.users["coord_a1"]}


@pytest.mark.parametrize(
    ("table", "row"),
    [("peer_mentors", "m_a1"), ("app_users", "coord_a1"), ("chapters", "A1")],
)
def test_nothing_tied_to_a_chapter_moves_to_another_organisation(
    conn: Conn, world: World, table: str, row: str
) -> None:
    """A mentor, coordinator or chapter with chapter rows cannot change organisation: the
    rows would then join two organisations (0017)."""
    ident = {**world.mentors, **world.users, **world.chapters}[row]
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(
            f"UPDATE {table} SET organization_id = %s WHERE id = %s",
            [world.orgs["B"], ident],
        )
