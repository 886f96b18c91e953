"""The outbox trigger: a listing change and its sync operation commit together, or not at all."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from hlfsync.testing import make_mentor, make_org

Conn = psycopg.Connection[Any]
STATUSES = ("active", "paused", "inactive")
PAIRS = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]


def _change_then_roll_back(conn: Conn, mentor: object) -> None:
    with conn.transaction():
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
        raise psycopg.Rollback


def _queue(conn: Conn, mentor: object) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT operation, status, source FROM sync_queue WHERE mentor_id = %s ORDER BY id",
        [mentor],
    ).fetchall()


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_each_status_pair_queues_only_when_listing_changes(conn: Conn, old: str, new: str) -> None:
    """Leaving or entering `active` queues one remove/restore; other changes queue nothing."""
    mentor = make_mentor(conn, make_org(conn), status=old)
    conn.execute("UPDATE peer_mentors SET status = %s WHERE id = %s", [new, mentor])
    expected = []
    if old == "active":
        expected = [("remove", "pending", "status_change")]
    elif new == "active":
        expected = [("restore", "pending", "status_change")]
    assert _queue(conn, mentor) == expected


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_each_status_change_is_audited_with_reason_and_actor(
    conn: Conn, old: str, new: str
) -> None:
    """Every status change writes one audit row with old and new status, reason and actor."""
    mentor = make_mentor(conn, make_org(conn), status=old)
    with conn.transaction():
        conn.execute("SELECT set_config('hlfsync.actor', 'coordinator:42', true)")
        conn.execute(
            "UPDATE peer_mentors SET status = %s, status_reason = 'manual' WHERE id = %s",
            [new, mentor],
        )
    rows = conn.execute(
        "SELECT event_type, actor, details FROM audit_log WHERE mentor_id = %s", [mentor]
    ).fetchall()
    assert len(rows) == 1
    event, actor, details = rows[0]
    assert (event, actor) == ("status_changed", "coordinator:42")
    assert details["old_status"] == old
    assert details["new_status"] == new
    assert details["reason"] == "manual"


def test_a_rolled_back_change_leaves_nothing(conn: Conn) -> None:
    """A status change that rolls back leaves no queue row, audit row or status change."""
    mentor = make_mentor(conn, make_org(conn))
    _change_then_roll_back(conn, mentor)
    assert _queue(conn, mentor) == []
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    assert conn.execute("SELECT status FROM peer_mentors WHERE id = %s", [mentor]).fetchone() == (
        "active",
    )


def test_an_update_that_keeps_the_status_queues_nothing(conn: Conn) -> None:
    """Writing the same status again is not a change: no operation, no audit."""
    mentor = make_mentor(conn, make_org(conn))
    conn.execute(
        "UPDATE peer_mentors SET status = 'active', full_name = 'x' WHERE id = %s", [mentor]
    )
    assert _queue(conn, mentor) == []
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_one_row_per_change_and_a_newer_operation_supersedes_the_waiting_one(conn: Conn) -> None:
    """remove then restore before any worker ran: the remove is superseded by the restore."""
    mentor = make_mentor(conn, make_org(conn))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    conn.execute("UPDATE peer_mentors SET status = 'active' WHERE id = %s", [mentor])
    rows = conn.execute(
        "SELECT id, operation, status, superseded_by, finished_at IS NOT NULL"
        " FROM sync_queue WHERE mentor_id = %s ORDER BY id",
        [mentor],
    ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("remove", "superseded"), ("restore", "pending")]
    assert rows[0][3] == rows[1][0]
    assert rows[0][4] is True


def test_a_set_based_update_queues_one_row_per_mentor(conn: Conn) -> None:
    """One UPDATE touching many mentors queues exactly one operation for each."""
    org = make_org(conn)
    mentors = [make_mentor(conn, org) for _ in range(25)]
    conn.execute("UPDATE peer_mentors SET status = 'paused'")
    counts = conn.execute(
        "SELECT mentor_id, count(*) FROM sync_queue GROUP BY mentor_id"
    ).fetchall()
    assert sorted(str(m) for m, n in counts if n == 1) == sorted(str(m) for m in mentors)


def test_the_payload_says_what_the_listing_must_become(conn: Conn) -> None:
    """The queued payload carries the contact id and the desired listing state."""
    mentor = make_mentor(conn, make_org(conn))
    contact = conn.execute(
        "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor]
    ).fetchone()
    assert contact is not None
    conn.execute("UPDATE peer_mentors SET status = 'inactive' WHERE id = %s", [mentor])
    payload = conn.execute("SELECT payload_json FROM sync_queue").fetchone()
    assert payload is not None
    assert payload[0]["contact_id"] == str(contact[0])
    assert payload[0]["listed"] is False
    assert payload[0]["status"] == "inactive"


def test_the_worker_is_notified_at_commit(conn: Conn, db_url: str) -> None:
    """A committed listing change NOTIFYs hlfsync_sync_queue with the new operation's id."""
    mentor = make_mentor(conn, make_org(conn))
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN hlfsync_sync_queue")
        conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
        note = next(listener.notifies(timeout=5))
    queued = conn.execute("SELECT id FROM sync_queue").fetchone()
    assert queued is not None
    assert note.payload == str(queued[0])


def test_a_rolled_back_change_notifies_nobody(conn: Conn, db_url: str) -> None:
    """NOTIFY is transactional: a rollback wakes no worker."""
    mentor = make_mentor(conn, make_org(conn))
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN hlfsync_sync_queue")
        _change_then_roll_back(conn, mentor)
        assert list(listener.notifies(timeout=0.2)) == []
