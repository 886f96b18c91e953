"""Linking a mentor (giving it a Dynamics contact id) reaches its operation even while a worker
holds it, so an operation held as unlinked is never held for good (0016)."""

from __future__ import annotations

from typing import Any

import psycopg

from hlfsync import testing as f

Conn = psycopg.Connection[Any]


def test_a_link_reaches_the_operation_in_flight_and_the_one_waiting(conn: Conn) -> None:
    """An operation claimed (in_progress) when the mentor is linked gets the contact id in its
    payload, as a pending one does; the pending one is also due at once."""
    org = f.make_org(conn)
    flying, waiting = (f.make_mentor(conn, org, contact=False) for _ in range(2))
    conn.execute(
        "UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)", [[flying, waiting]]
    )
    conn.execute(
        "UPDATE sync_queue SET status = 'in_progress', locked_until = now() + interval '1 minute'"
        " WHERE mentor_id = %s",
        [flying],
    )
    conn.execute("UPDATE sync_queue SET next_attempt_at = now() + interval '1 hour'"
                 " WHERE mentor_id = %s", [waiting])  # fmt: skip
    contacts = {}
    for mentor in (flying, waiting):
        contacts[mentor] = f.one(
            conn,
            "UPDATE peer_mentors SET dynamics_contact_id = gen_random_uuid() WHERE id = %s"
            " RETURNING dynamics_contact_id::text",
            [mentor],
        )
    rows = {
        mentor: (status, payload["contact_id"], due)
        for mentor, status, payload, due in conn.execute(
            "SELECT mentor_id, status, payload_json, next_attempt_at <= now() FROM sync_queue"
        ).fetchall()
    }
    assert rows[flying][:2] == ("in_progress", contacts[flying])
    assert rows[waiting] == ("pending", contacts[waiting], True)
