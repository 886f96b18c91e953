"""The schema refuses bad states itself, so no code path has to remember to."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import psycopg
import pytest

from hlfsync.testing import make_mentor, make_org, one

Conn = psycopg.Connection[Any]


def _queued(conn: Conn) -> int:
    mentor = make_mentor(conn, make_org(conn))
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = %s", [mentor])
    queued: int = one(conn, "SELECT id FROM sync_queue WHERE mentor_id = %s", [mentor])
    return queued


BAD_MENTOR_WRITES = [
    ("INSERT INTO peer_mentors (organization_id, full_name, status) VALUES (%(org)s, 'x', 'gone')",
     psycopg.errors.CheckViolation),
    ("INSERT INTO peer_mentors (organization_id, full_name) VALUES (gen_random_uuid(), 'x')",
     psycopg.errors.ForeignKeyViolation),
    ("INSERT INTO chapters (organization_id, name) VALUES (%(org)s, '  ')",
     psycopg.errors.CheckViolation),
    ("UPDATE org_settings SET reminder_threshold_days = '{30,-1}'", psycopg.errors.CheckViolation),
    ("UPDATE org_settings SET reminder_threshold_days = '{30,30}'", psycopg.errors.CheckViolation),
    ("UPDATE org_settings SET reminder_threshold_days = '{}'", psycopg.errors.CheckViolation),
    ("UPDATE org_settings SET reminder_threshold_days = '{30,NULL}'",
     psycopg.errors.CheckViolation),
    ("UPDATE org_settings SET reminder_threshold_days = '{0}'", psycopg.errors.CheckViolation),
    ("INSERT INTO device_tokens (user_id, token) VALUES (gen_random_uuid(), 't')",
     psycopg.errors.ForeignKeyViolation),
    ("UPDATE circuit_breakers SET state = 'ajar'", psycopg.errors.CheckViolation),
    ("UPDATE circuit_breakers SET state = 'open'", psycopg.errors.CheckViolation),
    ("INSERT INTO alerts (kind, incident_key, payload) VALUES ('gossip', 'k', '{}')",
     psycopg.errors.CheckViolation),
    ("INSERT INTO scheduled_runs (job, slot) VALUES ('unknown', now())",
     psycopg.errors.CheckViolation),
]  # fmt: skip


@pytest.mark.parametrize(("statement", "error"), BAD_MENTOR_WRITES)
def test_bad_domain_rows_are_refused(conn: Conn, statement: str, error: type[Exception]) -> None:
    """Each invalid value or dangling reference is refused by a constraint."""
    org = make_org(conn)
    with pytest.raises(error):
        conn.execute(statement.encode(), {"org": org})


BAD_QUEUE_WRITES = [
    "UPDATE sync_queue SET operation = 'delete' WHERE id = %(id)s",
    "UPDATE sync_queue SET status = 'lost' WHERE id = %(id)s",
    "UPDATE sync_queue SET attempt_count = -1 WHERE id = %(id)s",
    "UPDATE sync_queue SET status = 'succeeded' WHERE id = %(id)s",  # finished_at missing
    "UPDATE sync_queue SET status = 'in_progress' WHERE id = %(id)s",  # no lease
    "UPDATE sync_queue SET payload_json = '[]' WHERE id = %(id)s",
    "UPDATE sync_queue SET source = 'rumour' WHERE id = %(id)s",
]


@pytest.mark.parametrize("statement", BAD_QUEUE_WRITES)
def test_bad_queue_states_are_refused(conn: Conn, statement: str) -> None:
    """The queue refuses unknown values, negative counts and inconsistent end or lease state."""
    queued = _queued(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement.encode(), {"id": queued})


def test_two_waiting_operations_for_one_mentor_are_refused(conn: Conn) -> None:
    """At most one operation per mentor waits: a second pending row violates the unique index."""
    queued = _queued(conn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO sync_queue (mentor_id, operation, payload_json)"
            " SELECT mentor_id, 'restore', '{}' FROM sync_queue WHERE id = %s",
            [queued],
        )


def test_dead_letter_reason_must_name_its_kind(conn: Conn) -> None:
    """A dead letter's failure_reason starts with retries_exhausted or requires_investigation."""
    queued = _queued(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,"
            " failure_reason, attempt_count) SELECT id, mentor_id, operation, payload_json,"
            " 'it broke', 4 FROM sync_queue WHERE id = %s",
            [queued],
        )


def test_dead_letters_are_never_deleted(conn: Conn) -> None:
    """DELETE and TRUNCATE on dead_letter_queue are refused."""
    queued = _queued(conn)
    conn.execute(
        "INSERT INTO dead_letter_queue (sync_queue_id, mentor_id, operation_type, payload_json,"
        " failure_reason, attempt_count) SELECT id, mentor_id, operation, payload_json,"
        " 'retries_exhausted: HTTP 503', 4 FROM sync_queue WHERE id = %s",
        [queued],
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM dead_letter_queue")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("TRUNCATE dead_letter_queue CASCADE")


def test_audit_log_is_append_only_even_for_a_superuser(conn: Conn) -> None:
    """UPDATE, DELETE and TRUNCATE on audit_log are refused by the database itself."""
    conn.execute("INSERT INTO audit_log (event_type, details) VALUES ('test', '{}')")
    for statement in (
        "UPDATE audit_log SET event_type = 'changed'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement.encode())
    assert conn.execute("SELECT event_type FROM audit_log").fetchall() == [("test",)]


def test_reminders_are_unique_per_mentor_threshold_and_expiry(conn: Conn) -> None:
    """The same reminder for the same certification period cannot be stored twice."""
    mentor = make_mentor(conn, make_org(conn))
    insert = (
        "INSERT INTO cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)"
        " VALUES (%s, %s, %s)"
    )
    conn.execute(insert, [mentor, 30, date(2026, 12, 1)])
    conn.execute(insert, [mentor, 30, date(2027, 12, 1)])  # a later period is another reminder
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(insert, [mentor, 30, date(2026, 12, 1)])
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(insert, [mentor, 0, date(2026, 12, 1)])


def test_certification_history_must_be_an_array_and_dates_ordered(conn: Conn) -> None:
    """renewal_history is a JSON array, and a certificate cannot expire before it was issued."""
    mentor = make_mentor(conn, make_org(conn))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO certifications (mentor_id, issued_on, expires_on, renewal_history)"
            " VALUES (%s, '2026-01-01', '2027-01-01', '{}')",
            [mentor],
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO certifications (mentor_id, issued_on, expires_on)"
            " VALUES (%s, '2026-01-01', '2025-01-01')",
            [mentor],
        )


def test_one_contact_belongs_to_one_mentor(conn: Conn) -> None:
    """Two mentors cannot share a Dynamics contact."""
    org = make_org(conn)
    contact = uuid.uuid4()
    make_mentor(conn, org, contact=contact)
    with pytest.raises(psycopg.errors.UniqueViolation):
        make_mentor(conn, org, contact=contact)
