"""Bad sync payloads (rows of `sync_queue`): dead-lettered with a reason, or refused by the
database before they are queued; nothing queued is lost."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from hlfsync.db import links
from hlfsync.testing import one
from tests.integration.bad_input import sweep


@dataclass(frozen=True)
class BadPayload:
    operation: str
    payload: Callable[[str], Any]  # built from the mentor's real contact id
    reason: str | None  # the dead letter's reason starts so; None: applied as it is
    patches: int = 0  # PATCHes it costs the mentor's real contact


UNREADABLE = "requires_investigation: permanent: unreadable payload:"
UNLINKED = "unlinked"  # the reason starts so: held, not dead-lettered (issue 14)

PAYLOADS = {
    "contact_id missing": BadPayload(
        "remove", lambda c: {"listed": False}, f"{UNREADABLE} ('contact_id',): Field required"
    ),
    # Issue 14: a mentor without a contact id (and no alternate key configured) is held as
    # `unlinked`, not dead-lettered; the test unlinks the mentor so the row says what it does.
    "contact_id null": BadPayload(
        "remove", lambda c: {"contact_id": None, "listed": False},
        f"{UNLINKED}: mentor has no Dynamics contact id and no alternate key value",
    ),
    "contact_id a number": BadPayload(
        "remove", lambda c: {"contact_id": 42, "listed": False}, f"{UNREADABLE} ('contact_id',)"
    ),
    "contact_id not a UUID": BadPayload(
        "remove", lambda c: {"contact_id": "not-a-uuid", "listed": False},
        f"{UNREADABLE} ('contact_id',)",
    ),
    "contact_id an object": BadPayload(
        "remove", lambda c: {"contact_id": {"id": c}, "listed": False},
        f"{UNREADABLE} ('contact_id',)",
    ),
    "listed missing": BadPayload(
        "remove", lambda c: {"contact_id": c}, f"{UNREADABLE} ('listed',): Field required"
    ),
    "listed a word": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": "maybe"}, f"{UNREADABLE} ('listed',)"
    ),
    "listed a list": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": []}, f"{UNREADABLE} ('listed',)"
    ),
    "listed null": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": None}, f"{UNREADABLE} ('listed',)"
    ),
    "listed contradicts a remove": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": True},
        "requires_investigation: permanent: payload says listed=True for a remove",
    ),
    "listed contradicts a restore": BadPayload(
        "restore", lambda c: {"contact_id": c, "listed": False},
        "requires_investigation: permanent: payload says listed=False for a restore",
    ),
    "changed_at not a time": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": False, "changed_at": "last tuesday"},
        f"{UNREADABLE} ('changed_at',)",
    ),
    "an empty object": BadPayload("remove", lambda c: {}, f"{UNREADABLE} ('contact_id',)"),
    "garbage keys only": BadPayload(
        "remove", lambda c: {"🙈": [1, {"x": None}], "__proto__": {"polluted": True}, "": ""},
        f"{UNREADABLE} ('contact_id',)",
    ),
    "garbage keys beside valid fields": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": False, "🙈": [1, None],
                             "$where": "1 == 1", "nested": {"a": [{"b": None}]}},
        None, patches=1,
    ),
    "a 200 kB garbage value beside valid fields": BadPayload(
        "remove", lambda c: {"contact_id": c, "listed": False, "junk": "x" * 200_000},
        None, patches=1,
    ),
    "a contact Dynamics does not have": BadPayload(
        "remove", lambda c: {"contact_id": str(uuid.uuid4()), "listed": False},
        "requires_investigation: HTTP 404",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", PAYLOADS)
async def test_a_malformed_sync_payload_is_dead_lettered_and_nothing_queued_is_lost(
    rig: sweep.Rig, case: str
) -> None:
    """The worker meets a payload it cannot trust: a dead letter saying why, nothing sent for
    it, one push to the coordinator (or, for an unlinked mentor, held with the reason until it
    is linked); what was queued before it completes; the worker goes on."""
    bad, conn, admin = PAYLOADS[case], rig.conn, rig.admin
    team = sweep.team(conn, admin, 3)
    (first, first_contact), (second, second_contact), (mentor, contact) = team.pairs
    sweep.pause(conn, first, second)  # queued before, through the outbox
    if bad.reason is not None and bad.reason.startswith(UNLINKED):
        await _held_until_linked(rig, team, bad)
        return
    queued = one(
        conn,
        "INSERT INTO sync_queue (mentor_id, operation, payload_json) VALUES (%s, %s, %s)"
        " RETURNING id",
        [mentor, bad.operation, Jsonb(bad.payload(str(contact)))],
    )
    worker = await rig.engine()
    await sweep.cycles(worker, rig.clock, rounds=3)

    sent = bad.reason is not None and "HTTP" in bad.reason
    assert sweep.latest(conn, team) == {
        first: ("succeeded", 1),
        second: ("succeeded", 1),
        mentor: ("succeeded", 1) if bad.reason is None else ("dead_lettered", int(sent)),
    }
    letters = sweep.letters(conn, team)
    if bad.reason is None:
        assert letters == {}
        assert admin.fcm_messages() == []
    else:
        assert set(letters) == {mentor}
        reason = letters[mentor][0]
        assert reason.startswith(bad.reason), reason
        assert sweep.one_line(reason)
        assert (
            one(conn, "SELECT sync_queue_id FROM dead_letter_queue WHERE mentor_id = %s", [mentor])
            == queued
        )
        assert [(m["token"], m["data"]) for m in admin.fcm_messages()] == [
            sweep.push(team, mentor, bad.operation)
        ]
    assert sweep.patches(admin, contact) == bad.patches
    listed = sweep.listed(admin)
    assert (listed[str(first_contact)], listed[str(second_contact)]) == (False, False)
    assert listed[str(contact)] is (bad.reason is not None)
    assert rig.watch.named("handler_crashed") == []
    await sweep.still_syncs(rig, team, worker)
    assert rig.watch.leaks(conn) == set()


async def _held_until_linked(rig: sweep.Rig, team: sweep.Team, bad: BadPayload) -> None:
    """The `unlinked` rule (issue 14): held with one line and no attempt spent, no dead letter,
    no push, nothing sent, counted as unlinked; once linked it is applied, nothing lost."""
    conn, admin = rig.conn, rig.admin
    (first, first_contact), (second, second_contact), (mentor, contact) = team.pairs
    conn.execute("UPDATE peer_mentors SET dynamics_contact_id = NULL WHERE id = %s", [mentor])
    conn.execute(
        "INSERT INTO sync_queue (mentor_id, operation, payload_json) VALUES (%s, %s, %s)",
        [mentor, bad.operation, Jsonb(bad.payload(str(contact)))],
    )
    worker = await rig.engine()
    await sweep.cycles(worker, rig.clock, rounds=3)
    assert sweep.latest(conn, team) == {
        first: ("succeeded", 1),
        second: ("succeeded", 1),
        mentor: ("pending", 0),
    }
    assert sweep.letters(conn, team) == {}
    error = one(
        conn,
        "SELECT last_error FROM sync_queue WHERE mentor_id = %s AND status = 'pending'",
        [mentor],
    )
    assert error.startswith(bad.reason or ""), error
    assert sweep.one_line(error)
    assert await links.unlinked_pending(worker.pool) == 1  # what status and health show
    assert admin.fcm_messages() == []  # no alert per change: an unlinked mentor is no failure
    assert sweep.patches(admin, contact) == 0
    assert sweep.listed(admin)[str(contact)] is True
    assert rig.watch.named("handler_crashed") == []
    # Linking the mentor wakes the held operation (migration 0011): applied once, nothing lost.
    conn.execute(
        "UPDATE peer_mentors SET dynamics_contact_id = %s WHERE id = %s", [contact, mentor]
    )
    await sweep.cycles(worker, rig.clock, rounds=2)
    assert sweep.latest(conn, team)[mentor] == ("succeeded", 1)
    assert sweep.patches(admin, contact) == 1
    listed = sweep.listed(admin)
    assert (listed[str(first_contact)], listed[str(second_contact)], listed[str(contact)]) == (
        False, False, False,
    )  # fmt: skip
    assert sweep.letters(conn, team) == {}
    await sweep.still_syncs(rig, team, worker)
    assert rig.watch.leaks(conn) == set()


REFUSED = {
    "a JSON array": ("remove", "[]", pg_errors.CheckViolation),
    "a JSON string": ("remove", '"remove me"', pg_errors.CheckViolation),
    "a JSON number": ("remove", "42", pg_errors.CheckViolation),
    "JSON null": ("remove", "null", pg_errors.CheckViolation),
    "SQL NULL": ("remove", None, pg_errors.NotNullViolation),
    "not JSON at all": ("remove", '{"contact_id": ', pg_errors.InvalidTextRepresentation),
    "an unknown operation": ("delete", "{}", pg_errors.CheckViolation),
    "no operation": (None, "{}", pg_errors.NotNullViolation),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_a_payload_the_database_refuses_never_enters_the_queue(
    rig: sweep.Rig, case: str
) -> None:
    """Non-object JSON, NULL, an unknown operation: the insert itself fails with a named
    constraint, the queue is as it was, and what was queued before still completes."""
    operation, payload, refusal = REFUSED[case]
    conn = rig.conn
    team = sweep.team(conn, rig.admin, 2)
    (before, before_contact), (mentor, _contact) = team.pairs
    sweep.pause(conn, before)
    was = sweep.snapshot(conn)
    with pytest.raises(refusal) as refused:
        conn.execute(
            "INSERT INTO sync_queue (mentor_id, operation, payload_json)"
            " VALUES (%s, %s, %s::jsonb)",
            [mentor, operation, payload],
        )
    assert str(refused.value).strip()
    assert sweep.snapshot(conn) == was
    worker = await rig.engine()
    await sweep.cycles(worker, rig.clock, rounds=2)
    assert sweep.latest(conn, team) == {before: ("succeeded", 1)}
    assert sweep.listed(rig.admin)[str(before_contact)] is False
    assert sweep.letters(conn, team) == {}
    assert rig.watch.leaks(conn) == set()


async def test_a_second_waiting_operation_for_a_mentor_is_refused_and_the_first_kept(
    rig: sweep.Rig,
) -> None:
    """Two waiting operations for one mentor would break ordering: the database refuses the
    second; the first, payload and all, is untouched and completes."""
    conn = rig.conn
    team = sweep.team(conn, rig.admin, 1)
    ((mentor, contact),) = team.pairs
    sweep.pause(conn, mentor)
    was = sweep.snapshot(conn)
    with pytest.raises(pg_errors.UniqueViolation):
        conn.execute(
            "INSERT INTO sync_queue (mentor_id, operation, payload_json)"
            " VALUES (%s, 'restore', %s)",
            [mentor, Jsonb({"contact_id": str(contact), "listed": True})],
        )
    assert sweep.snapshot(conn) == was
    worker = await rig.engine()
    await sweep.cycles(worker, rig.clock, rounds=2)
    assert sweep.latest(conn, team) == {mentor: ("succeeded", 1)}
    assert sweep.listed(rig.admin)[str(contact)] is False
    assert rig.watch.leaks(conn) == set()
