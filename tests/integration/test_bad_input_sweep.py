"""Bad-input sweep (issue 8): every external input fed its malformed forms, in one place.

The inputs: sync payloads (rows of `sync_queue`), settings (`HLFSYNC_*`, `.env`), Dynamics
answers (PATCH, WhoAmI, the paged GET, the token authority), FCM answers (the send and its token
endpoint), API requests and access tokens. After each bad input the same invariant is checked:

- a clear error: one line; or a problem+json 4xx; or a dead letter saying `requires_investigation`
  and why (or, where the answer may pass, a retry whose recorded error says what came back);
- no crash: the worker, the dispatcher or the app does a good operation right afterwards;
- nothing lost: what was queued before the bad input is still there, or completed;
- no secret: the Dynamics client secret, the JWT secret, the FCM private key and any bearer token
  appear in no log event, no captured output, and no queue, dead-letter, audit or alert row.

Everything runs in-process against the session's PostgreSQL and sandbox (real HTTPS), with a
FakeClock: retry delays and pauses pass without waiting.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import psycopg
import pytest
import structlog
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from hlfsync import cli, services
from hlfsync.api import create_app, mint_token
from hlfsync.core.errors import Permanent, SyncFailure, Transient
from hlfsync.dataverse.client import DataverseClient
from hlfsync.dataverse.factory import build_tokens, tls_verify
from hlfsync.db import connect
from hlfsync.db import reconcile as reconcile_mod
from hlfsync.notify import fcm_wire
from hlfsync.sandbox.client import AdminClient
from hlfsync.sandbox.server import SandboxServer
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock
from hlfsync.worker.health import check_credentials
from tests.integration.api import world as world_mod
from tests.integration.db.factories import make_chapter, make_mentor, make_org, make_user, one

Conn = psycopg.Connection[Any]
Engine = Callable[..., Awaitable[services.WorkerServices]]

# Recognisable secrets: none may ever be printed, logged or stored in a row.
CLIENT_SECRET = "sweep-client-S3CRET-4b1d9e-never-logged"
JWT_SECRET = "sweep-jwt-S3CRET-0123456789-abcdefghijklmnopqrstuvwxyz"
BEARER_PREFIXES = ("sbx-entra-", "sbx-google-")  # every access token the sandbox issues
HTML_PAGE = (
    "<html><head><title>502</title></head><body><h1>Bad Gateway</h1>\n<p>nginx</p></body></html>"
)


# --- one database, a quiet queue per test, the shared invariant ----------------------------


@pytest.fixture(scope="module")
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """One database for the whole sweep, instead of a clone per case (a third of a second each).

    Each test owns its organisation and mentors and starts from a quiet queue (see `watch`).
    """
    name, template = f"sweep{os.getpid()}", urlsplit(template_url).path.lstrip("/")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(drop)
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    yield connect.with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(drop)


# What an earlier case may leave behind that would steer the next one: waiting operations and
# deliveries (finished here, never deleted), a tripped or paused breaker, failing credentials.
QUIET = (
    "UPDATE sync_queue SET status = 'superseded', finished_at = now(), locked_by = NULL,"
    " locked_until = NULL WHERE status IN ('pending', 'in_progress')",
    "UPDATE alert_deliveries SET status = 'failed', finished_at = now(), locked_until = NULL"
    " WHERE status IN ('pending', 'in_progress')",
    "UPDATE circuit_breakers SET state = 'closed', consecutive_failures = 0, opened_at = NULL,"
    " probe_started_at = NULL, paused_until = NULL, auth_failed = false",
    "UPDATE credential_health SET ok = true, failing_since = NULL",
)
WITH_ID = ("sync_queue", "dead_letter_queue", "audit_log", "alerts", "alert_deliveries",
           "scheduled_runs")  # fmt: skip
WITHOUT_ID = ("circuit_breakers", "credential_health")


def _rows_as_text(conn: Conn, marks: dict[str, int]) -> str:
    """Every row written since `marks` (and the few rows without ids), as JSON text."""
    parts = []
    for table in (*WITH_ID, *WITHOUT_ID):
        where = sql.SQL("WHERE id > {}").format(marks[table]) if table in marks else sql.SQL("")
        query = sql.SQL(
            "SELECT coalesce(string_agg(to_jsonb(t)::text, E'\\n'), '') FROM {} t {}"
        ).format(sql.Identifier(table), where)
        parts.append(one(conn, query.as_string(conn)))
    return "\n".join(parts)


@dataclass
class Watch:
    """What a test's code said and wrote: structlog events, stdlib warnings, stdout and stderr,
    and the rows written since the test began."""

    events: list[MutableMapping[str, Any]]
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]
    marks: dict[str, int]
    secrets: list[str]
    printed: list[str] = field(default_factory=list)

    def text(self) -> str:
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        return "\n".join(
            [*(repr(dict(event)) for event in self.events), self.caplog.text, *self.printed]
        )

    def leaks(self, conn: Conn, *more: str) -> set[str]:
        """The watched secrets found in logs, output, rows written during the test, or `more`."""
        haystack = "\n".join([self.text(), _rows_as_text(conn, self.marks), *more])
        return {secret for secret in self.secrets if secret in haystack}

    def named(self, event: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


@pytest.fixture
def watch(
    conn: Conn, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[Watch]:
    for statement in QUIET:
        conn.execute(statement.encode())
    marks = {table: one(conn, f"SELECT coalesce(max(id), 0) FROM {table}") for table in WITH_ID}
    # WARNING: what the stdlib loggers (msal, httpx, google-auth) print when nobody configures them.
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs() as events:
        yield Watch(events, caplog, capsys, marks, [CLIENT_SECRET, JWT_SECRET, *BEARER_PREFIXES])


def _one_line(text: str | None) -> bool:
    return bool(text) and "\n" not in (text or "") and "Traceback" not in (text or "")


# --- a worker over the sandbox -------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A second ahead of the database clock, so freshly queued rows are due."""
    return FakeClock(datetime.now(UTC) + timedelta(seconds=1))


@pytest.fixture
def dyn(sandbox: SandboxServer, admin: AdminClient, watch: Watch) -> Iterator[SandboxServer]:
    """The sandbox accepting CLIENT_SECRET only; its FCM private key is watched too."""
    admin.rotate_credentials(client_secret=CLIENT_SECRET)
    key = json.loads(sandbox.fcm_credentials_path.read_text())["private_key"]
    watch.secrets.append(key.splitlines()[1])  # a line of the key's base64 body
    yield sandbox
    admin.reset()  # the session's sandbox goes back to its own secret


def _settings(sandbox: SandboxServer, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()
    }
    values.update(database_url=db_url, worker_concurrency=2, db_pool_size=2)
    values.update(extra)
    return Settings(**values)


@pytest.fixture
async def engine(dyn: SandboxServer, db_url: str, clock: FakeClock) -> AsyncIterator[Engine]:
    """Workers wired by the production factories (msal, httpx, google-auth) to the sandbox."""
    built: list[services.WorkerServices] = []

    async def make(client: Any = None, **extra: Any) -> services.WorkerServices:
        conf = _settings(dyn, db_url, **extra)
        worker = await services.build_worker(conf, clock=clock, client=client)
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await worker.aclose()


@dataclass
class Rig:
    """Everything a worker case needs, in one argument."""

    conn: Conn
    admin: AdminClient
    sandbox: SandboxServer
    engine: Engine
    clock: FakeClock
    watch: Watch


@pytest.fixture
def rig(  # noqa: PLR0917 - fixtures are positional
    conn: Conn, admin: AdminClient, dyn: SandboxServer, engine: Engine, clock: FakeClock,
    watch: Watch,
) -> Rig:  # fmt: skip
    return Rig(conn, admin, dyn, engine, clock, watch)


@dataclass
class Team:
    """An organisation, one chapter, its coordinator's device, and mentors listed in Dynamics."""

    org: uuid.UUID
    chapter: uuid.UUID
    device: str
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    @property
    def mentors(self) -> list[uuid.UUID]:
        return [mentor for mentor, _ in self.pairs]


def _team(conn: Conn, admin: AdminClient, count: int) -> Team:
    org = make_org(conn, "Sweep")
    chapter = make_chapter(conn, org)
    device = f"fcm-device-{uuid.uuid4().hex}"
    make_user(conn, org, coordinates=(chapter,), token=device)
    team = Team(org, chapter, device)
    for _ in range(count):
        _recruit(conn, admin, team)
    return team


def _recruit(conn: Conn, admin: AdminClient, team: Team) -> tuple[uuid.UUID, uuid.UUID]:
    mentor = make_mentor(conn, team.org, chapters=(team.chapter,))
    contact = one(conn, "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    admin.put_contacts([{"contactid": str(contact), "listed": True}])
    team.pairs.append((mentor, contact))
    return mentor, contact


def _pause(conn: Conn, *mentors: uuid.UUID) -> None:
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)", [list(mentors)])


def _latest(conn: Conn, team: Team) -> dict[uuid.UUID, tuple[str, int]]:
    """Each of the team's mentors' latest operation: (status, attempt_count)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (mentor_id) mentor_id, status, attempt_count FROM sync_queue"
        " WHERE mentor_id = ANY(%s) ORDER BY mentor_id, id DESC",
        [team.mentors],
    ).fetchall()
    return {mentor: (status, attempts) for mentor, status, attempts in rows}


def _snapshot(conn: Conn) -> list[tuple[Any, ...]]:
    """The queue and the dead letters as they stand, to prove a bad input changed nothing."""
    queue = conn.execute(
        "SELECT id, mentor_id, operation, status, attempt_count, throttle_count, next_attempt_at,"
        " md5(payload_json::text) FROM sync_queue ORDER BY id"
    ).fetchall()
    letters = conn.execute("SELECT id, sync_queue_id, status FROM dead_letter_queue ORDER BY id")
    return [*queue, *letters.fetchall()]


def _letters(conn: Conn, team: Team) -> dict[uuid.UUID, tuple[str, int]]:
    """The team's dead letters: mentor → (failure_reason, attempt_count)."""
    rows = conn.execute(
        "SELECT mentor_id, failure_reason, attempt_count FROM dead_letter_queue"
        " WHERE mentor_id = ANY(%s)",
        [team.mentors],
    )
    return {mentor: (reason, attempts) for mentor, reason, attempts in rows.fetchall()}


def _listed(admin: AdminClient) -> dict[str, bool]:
    return {c["contactid"]: c["listed"] for c in admin.contacts()}


def _patches(admin: AdminClient, contact: uuid.UUID) -> int:
    return sum(
        1
        for r in admin.requests(kind="dataverse", method="PATCH")
        if r["contactid"] == str(contact)
    )


def _errors_of(conn: Conn, mentor: uuid.UUID) -> list[str]:
    """The errors the audit log recorded for a mentor's attempts, oldest first."""
    rows = conn.execute(
        "SELECT details->>'error' FROM audit_log WHERE mentor_id = %s"
        " AND details->>'error' IS NOT NULL ORDER BY id",
        [mentor],
    ).fetchall()
    return [row[0] for row in rows]


async def _cycles(worker: services.WorkerServices, clock: FakeClock, *, rounds: int,
                  step_s: float = 1.0) -> None:  # fmt: skip
    for _ in range(rounds):
        await worker.worker.run_once()
        await worker.dispatcher.run_once()
        clock.advance(step_s)


async def _still_syncs(rig: Rig, team: Team, worker: services.WorkerServices) -> None:
    """No crash: a status change made after the bad input is synced by the same worker."""
    mentor, contact = _recruit(rig.conn, rig.admin, team)
    _pause(rig.conn, mentor)
    await _cycles(worker, rig.clock, rounds=2)
    assert _latest(rig.conn, team)[mentor] == ("succeeded", 1)
    assert _listed(rig.admin)[str(contact)] is False


def _push(team: Team, mentor: uuid.UUID, operation: str = "remove") -> tuple[str, dict[str, str]]:
    return (team.device, {"type": "hlf_sync_failure", "mentor_id": str(mentor),
                          "operation": operation})  # fmt: skip


# --- sync payloads -------------------------------------------------------------------------


@dataclass(frozen=True)
class BadPayload:
    operation: str
    payload: Callable[[str], Any]  # built from the mentor's real contact id
    reason: str | None  # the dead letter's reason starts so; None: applied as it is
    patches: int = 0  # PATCHes it costs the mentor's real contact


UNREADABLE = "requires_investigation: permanent: unreadable payload:"
PAYLOADS = {
    "contact_id missing": BadPayload(
        "remove", lambda c: {"listed": False}, f"{UNREADABLE} ('contact_id',): Field required"
    ),
    "contact_id null": BadPayload(
        "remove", lambda c: {"contact_id": None, "listed": False},
        "requires_investigation: permanent: mentor has no Dynamics contact id",
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
    rig: Rig, case: str
) -> None:
    """The worker meets a payload it cannot trust: a dead letter saying why, nothing sent for
    it, one push to the coordinator; what was queued before it completes; the worker goes on."""
    bad, conn, admin = PAYLOADS[case], rig.conn, rig.admin
    team = _team(conn, admin, 3)
    (first, first_contact), (second, second_contact), (mentor, contact) = team.pairs
    _pause(conn, first, second)  # queued before, through the outbox
    queued = one(
        conn,
        "INSERT INTO sync_queue (mentor_id, operation, payload_json) VALUES (%s, %s, %s)"
        " RETURNING id",
        [mentor, bad.operation, Jsonb(bad.payload(str(contact)))],
    )
    worker = await rig.engine()
    await _cycles(worker, rig.clock, rounds=3)

    sent = bad.reason is not None and "HTTP" in bad.reason
    assert _latest(conn, team) == {
        first: ("succeeded", 1),
        second: ("succeeded", 1),
        mentor: ("succeeded", 1) if bad.reason is None else ("dead_lettered", int(sent)),
    }
    letters = _letters(conn, team)
    if bad.reason is None:
        assert letters == {}
        assert admin.fcm_messages() == []
    else:
        assert set(letters) == {mentor}
        reason = letters[mentor][0]
        assert reason.startswith(bad.reason), reason
        assert _one_line(reason)
        assert (
            one(conn, "SELECT sync_queue_id FROM dead_letter_queue WHERE mentor_id = %s", [mentor])
            == queued
        )
        assert [(m["token"], m["data"]) for m in admin.fcm_messages()] == [
            _push(team, mentor, bad.operation)
        ]
    assert _patches(admin, contact) == bad.patches
    listed = _listed(admin)
    assert (listed[str(first_contact)], listed[str(second_contact)]) == (False, False)
    assert listed[str(contact)] is (bad.reason is not None)
    assert rig.watch.named("handler_crashed") == []
    await _still_syncs(rig, team, worker)
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
async def test_a_payload_the_database_refuses_never_enters_the_queue(rig: Rig, case: str) -> None:
    """Non-object JSON, NULL, an unknown operation: the insert itself fails with a named
    constraint, the queue is as it was, and what was queued before still completes."""
    operation, payload, refusal = REFUSED[case]
    conn = rig.conn
    team = _team(conn, rig.admin, 2)
    (before, before_contact), (mentor, _contact) = team.pairs
    _pause(conn, before)
    was = _snapshot(conn)
    with pytest.raises(refusal) as refused:
        conn.execute(
            "INSERT INTO sync_queue (mentor_id, operation, payload_json)"
            " VALUES (%s, %s, %s::jsonb)",
            [mentor, operation, payload],
        )
    assert str(refused.value).strip()
    assert _snapshot(conn) == was
    worker = await rig.engine()
    await _cycles(worker, rig.clock, rounds=2)
    assert _latest(conn, team) == {before: ("succeeded", 1)}
    assert _listed(rig.admin)[str(before_contact)] is False
    assert _letters(conn, team) == {}
    assert rig.watch.leaks(conn) == set()


async def test_a_second_waiting_operation_for_a_mentor_is_refused_and_the_first_kept(
    rig: Rig,
) -> None:
    """Two waiting operations for one mentor would break ordering: the database refuses the
    second; the first, payload and all, is untouched and completes."""
    conn = rig.conn
    team = _team(conn, rig.admin, 1)
    ((mentor, contact),) = team.pairs
    _pause(conn, mentor)
    was = _snapshot(conn)
    with pytest.raises(pg_errors.UniqueViolation):
        conn.execute(
            "INSERT INTO sync_queue (mentor_id, operation, payload_json)"
            " VALUES (%s, 'restore', %s)",
            [mentor, Jsonb({"contact_id": str(contact), "listed": True})],
        )
    assert _snapshot(conn) == was
    worker = await rig.engine()
    await _cycles(worker, rig.clock, rounds=2)
    assert _latest(conn, team) == {mentor: ("succeeded", 1)}
    assert _listed(rig.admin)[str(contact)] is False
    assert rig.watch.leaks(conn) == set()


# --- Dynamics answers to the PATCH ---------------------------------------------------------


@dataclass(frozen=True)
class BadAnswer:
    status: int
    body: str
    content_type: str | None  # None: the sandbox's application/json
    outcome: str  # "retried" (then applied), "applied", "dead_lettered"
    says: str | None  # the recorded error (retried) or the dead letter's reason starts so


OVERLONG = json.dumps(
    {"error": {"code": "0x80048d19", "message": "field is wrong\n\tsee below\n" * 1000}}
)
ANSWERS = {
    "200 with an HTML page": BadAnswer(
        200, HTML_PAGE, "text/html", "retried",
        "HTTP 200: write answered 200 with a text/html body: not the service",
    ),
    "200 with plain text": BadAnswer(
        200, "OK", "text/plain", "retried", "HTTP 200: write answered 200 with a text/plain body"
    ),
    "200 with XML": BadAnswer(
        200, "<?xml version='1.0'?><ok/>", "application/xml", "retried",
        "HTTP 200: write answered 200 with a application/xml body",
    ),
    "200 with truncated JSON": BadAnswer(200, '{"contactid": "', None, "applied", None),
    "502 with an HTML page": BadAnswer(
        502, HTML_PAGE, "text/html", "retried",
        "HTTP 502: server did not complete the request: text/html body",
    ),
    "503 with plain text": BadAnswer(
        503, "Service Unavailable", "text/plain", "retried",
        "HTTP 503: server did not complete the request: text/plain body",
    ),
    "500 with an empty body": BadAnswer(
        500, "", None, "retried", "HTTP 500: server did not complete the request: empty body"
    ),
    "500 with truncated JSON": BadAnswer(
        500, '{"error": {"code": "0x8004', None, "retried",
        "HTTP 500: server did not complete the request: application/json body",
    ),
    "599": BadAnswer(
        599, "", None, "retried", "HTTP 599: server did not complete the request: empty body"
    ),
    "400 with an HTML page": BadAnswer(
        400, HTML_PAGE, "text/html", "dead_lettered",
        "requires_investigation: HTTP 400: request rejected: text/html body",
    ),
    "400 with truncated JSON": BadAnswer(
        400, '{"error": {"code": "0x80048d19", "mess', None, "dead_lettered",
        "requires_investigation: HTTP 400: request rejected: application/json body",
    ),
    "400 with an error of the wrong shape": BadAnswer(
        400, '{"error": "just a string"}', None, "dead_lettered",
        "requires_investigation: HTTP 400: request rejected: application/json body",
    ),
    "400 with a 40 kB many-line message": BadAnswer(
        400, OVERLONG, None, "dead_lettered",
        "requires_investigation: HTTP 400 0x80048d19: request rejected: field is wrong see below",
    ),
    "404 with an empty body": BadAnswer(
        404, "", None, "dead_lettered",
        "requires_investigation: HTTP 404: request rejected: empty body",
    ),
    "409 as CSV": BadAnswer(
        409, "a,b\n1,2", "text/csv", "dead_lettered",
        "requires_investigation: HTTP 409: request rejected: text/csv body",
    ),
    "a 302 redirect": BadAnswer(
        302, "", None, "dead_lettered",
        "requires_investigation: HTTP 302: unexpected redirect: check the configured URL",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", ANSWERS)
async def test_a_malformed_dynamics_answer_is_classified_and_nothing_queued_is_lost(
    rig: Rig, case: str
) -> None:
    """One contact's PATCH is answered badly (once): retried when it may pass, dead-lettered
    with the reason when it cannot; the operations queued before it complete either way."""
    bad, conn, admin = ANSWERS[case], rig.conn, rig.admin
    team = _team(conn, admin, 3)
    (first, first_contact), (second, second_contact), (mentor, contact) = team.pairs
    _pause(conn, first, second)
    rule: dict[str, Any] = {"method": "PATCH", "contactid": str(contact), "status": bad.status,
                            "body": bad.body, "times": 1}  # fmt: skip
    if bad.content_type is not None:
        rule["content_type"] = bad.content_type
    admin.set_faults([rule])
    _pause(conn, mentor)
    worker = await rig.engine()
    await _cycles(worker, rig.clock, rounds=4)

    final = {"retried": ("succeeded", 2), "applied": ("succeeded", 1),
             "dead_lettered": ("dead_lettered", 1)}[bad.outcome]  # fmt: skip
    assert _latest(conn, team) == {first: ("succeeded", 1), second: ("succeeded", 1), mentor: final}
    assert _patches(admin, contact) == final[1]
    letters = _letters(conn, team)
    errors = _errors_of(conn, mentor)
    if bad.outcome == "dead_lettered":
        assert set(letters) == {mentor}
        assert letters[mentor][0].startswith(bad.says or ""), letters[mentor][0]
        assert _one_line(letters[mentor][0])
        assert len(letters[mentor][0]) <= len("requires_investigation: ") + 500
        assert [(m["token"], m["data"]) for m in admin.fcm_messages()] == [_push(team, mentor)]
    else:
        assert letters == {}
        assert len(errors) == (1 if bad.outcome == "retried" else 0)
    assert all(e.startswith(bad.says or "") and _one_line(e) for e in errors), errors
    listed = _listed(admin)
    assert (listed[str(first_contact)], listed[str(second_contact)]) == (False, False)
    # A JSON 2xx counts as applied: the sandbox's fault answered instead of applying, so the
    # contact stays listed until reconciliation finds it; a retried change did apply.
    assert listed[str(contact)] is (bad.outcome != "retried")
    await _still_syncs(rig, team, worker)
    assert rig.watch.leaks(conn) == set()


class RetryAfterAs(httpx.AsyncBaseTransport):
    """A hop that rewrites the Retry-After of every 429 to `value`: how else would a garbage
    header reach us from a sandbox that only sends good ones."""

    def __init__(self, inner: httpx.AsyncBaseTransport, value: str) -> None:
        self._inner = inner
        self._value = value

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.status_code != 429:
            return response
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"retry-after"]
        return httpx.Response(
            429, headers=[*headers, (b"retry-after", self._value.encode())],
            stream=response.stream, extensions=response.extensions,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self._inner.aclose()


RETRY_AFTER = {  # Retry-After as sent → the pause it must cause, in seconds
    "a billion seconds": (None, 3600.0),  # sent by the sandbox itself; capped at an hour
    "negative": ("-30", 5.0),
    "a word": ("soon", 5.0),
    "NaN": ("NaN", 5.0),
    "infinite": ("inf", 5.0),
    "empty": ("", 5.0),
    "a 400-digit number": ("9" * 400, 5.0),
    "a date long past": ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    "a .NET span of 41 days": ("999:00:00", 3600.0),
}


@pytest.mark.parametrize("case", RETRY_AFTER)
async def test_a_429_with_an_odd_retry_after_pauses_sanely_and_loses_nothing(
    rig: Rig, db_url: str, case: str
) -> None:
    """A 429 whose Retry-After is absurd or garbage pauses for a sane time (5 s by default, an
    hour at most), spends no attempt, dead-letters nothing; everything completes after it."""
    value, pause_s = RETRY_AFTER[case]
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 3)
    (first, _), (second, _), (mentor, contact) = team.pairs
    _pause(conn, first, second)
    admin.set_faults([{"method": "PATCH", "contactid": str(contact), "status": 429,
                       "retry_after": 1e9 if value is None else 7, "times": 1}])  # fmt: skip
    _pause(conn, mentor)
    client = None
    if value is not None:
        conf = _settings(rig.sandbox, db_url)
        inner = httpx.AsyncHTTPTransport(verify=tls_verify(conf.dynamics_ca_bundle))
        http = httpx.AsyncClient(transport=RetryAfterAs(inner, value), timeout=10.0)
        client = DataverseClient(
            http, build_tokens(conf), conf.dynamics_url or "",
            entity_set=conf.dynamics_entity_set, listing_field=conf.dynamics_listing_field,
        )  # fmt: skip
    worker = await rig.engine(client=client)
    await worker.worker.run_once()
    delays = conn.execute(
        "SELECT (details->>'delay_s')::float8 FROM audit_log WHERE mentor_id = %s"
        " AND details ? 'delay_s' ORDER BY id",
        [mentor],
    ).fetchall()
    assert delays == [(pause_s,)]
    rig.clock.advance(pause_s + 1)
    await _cycles(worker, rig.clock, rounds=2)
    rows = conn.execute(
        "SELECT status, attempt_count, throttle_count FROM sync_queue WHERE mentor_id = ANY(%s)",
        [team.mentors],
    ).fetchall()
    assert sorted(rows) == [("succeeded", 1, 0), ("succeeded", 1, 0), ("succeeded", 1, 1)]
    assert _letters(conn, team) == {}
    assert one(conn, "SELECT state FROM circuit_breakers WHERE name = 'dynamics'") == "closed"
    await _still_syncs(rig, team, worker)
    assert rig.watch.leaks(conn) == set()


# --- Dynamics answers to WhoAmI, the token authority and the paged GET ----------------------


WHOAMI_OFF_CONTRACT = "HTTP 200: WhoAmI does not follow the contract: WhoAmI answer"
WHOAMI = {
    "an empty object": (200, "{}", None, f"{WHOAMI_OFF_CONTRACT} has no UserId"),
    "UserId a number": (200, '{"UserId": 42}', None, f"{WHOAMI_OFF_CONTRACT} has no UserId"),
    "a JSON list": (200, "[]", None, f"{WHOAMI_OFF_CONTRACT} is not a JSON object"),
    "an HTML page": (200, HTML_PAGE, "text/html", "HTTP 200: expected JSON, got a text/html body"),
    "truncated JSON": (200, '{"UserId": "', None, "HTTP 200: truncated or invalid JSON body"),
    "an empty body": (200, "", None, "HTTP 200: expected JSON, got an empty body"),
    "JSON sent as text/plain": (200, '{"UserId": "x"}', "text/plain",
                                "HTTP 200: expected JSON, got a text/plain body"),
    "500 with an HTML page": (500, HTML_PAGE, "text/html",
                              "HTTP 500: server did not complete the request: text/html body"),
}  # fmt: skip


@pytest.mark.parametrize("case", WHOAMI)
async def test_a_malformed_whoami_is_an_inconclusive_check_not_a_credential_alarm(
    rig: Rig, case: str
) -> None:
    """The health check's WhoAmI answered with junk: a failed check saying what came back, no
    credential alert, the queue untouched; once WhoAmI is sane the check and the sync pass."""
    status, body, content_type, detail = WHOAMI[case]
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 2)
    _pause(conn, *team.mentors)
    rule: dict[str, Any] = {"method": "GET", "path": "/api/data/v9.2/WhoAmI", "status": status,
                            "body": body}  # fmt: skip
    if content_type:
        rule["content_type"] = content_type
    admin.set_faults([rule])
    worker = await rig.engine()
    was = _snapshot(conn)
    ctx = worker.worker.ctx
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    assert result == {"ok": False, "auth": False, "detail": detail, "alerted": False}
    assert _snapshot(conn) == was
    assert one(conn, "SELECT count(*) FROM alerts WHERE id > %s AND kind = 'auth_failure'",
               [rig.watch.marks["alerts"]]) == 0  # fmt: skip
    admin.clear_faults()
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    assert result["ok"] is True
    await _cycles(worker, rig.clock, rounds=2)
    assert _latest(conn, team) == dict.fromkeys(team.mentors, ("succeeded", 1))
    assert rig.watch.leaks(conn) == set()


REFUSAL_QUOTING_THE_SECRET = json.dumps({
    "error": "invalid_client",
    "error_description": f"AADSTS7000215: Invalid client secret provided: {CLIENT_SECRET}\r\n"
                         "Trace ID: 0000\r\nCorrelation ID: 1111",
    "error_codes": [7000215],
})  # fmt: skip
AUTHORITY = {
    "token: an HTML page": (
        {"kind": "token", "status": 200, "body": HTML_PAGE, "content_type": "text/html"},
        "transient: token authority answered with something other than JSON",
    ),
    "token: 500 with an HTML page": (  # Retry-After 0, or msal holds the answer 5 s
        {
            "kind": "token",
            "status": 500,
            "body": HTML_PAGE,
            "content_type": "text/html",
            "retry_after": 0,
        },
        "transient: token authority answered with a server error",
    ),
    "token: an empty object": (
        {"kind": "token", "status": 200, "body": "{}"},
        "auth: token request refused: no access_token in the answer",
    ),
    "token: access_token a number": (
        {"kind": "token", "status": 200, "body": '{"access_token": 5, "expires_in": 3600}'},
        "auth: token request refused: no access_token in the answer",
    ),
    "token: a JSON list": (
        {"kind": "token", "status": 200, "body": "[]"},
        "auth: token authority answered in an unexpected shape",
    ),
    "token: a JSON string": (
        {"kind": "token", "status": 200, "body": '"sbx-entra-not-really"'},
        "auth: token authority answered in an unexpected shape",
    ),
    "token: a refusal quoting the client secret": (
        {"kind": "token", "status": 401, "body": REFUSAL_QUOTING_THE_SECRET},
        "auth AADSTS7000215: token request refused: invalid_client (AADSTS7000215: Invalid "
        "client secret provided: ***)",
    ),
    "discovery: an HTML page": (
        {"kind": "discovery", "status": 200, "body": HTML_PAGE, "content_type": "text/html"},
        "transient: token authority answered with something other than JSON",
    ),
    "discovery: an empty object": (
        {"kind": "discovery", "status": 200, "body": "{}"},
        "auth: token authority answered in an unexpected shape (KeyError)",
    ),
    "discovery: a JSON list": (
        {"kind": "discovery", "status": 200, "body": "[]"},
        "auth: token authority answered in an unexpected shape",
    ),
}


@pytest.mark.parametrize("case", AUTHORITY)
async def test_a_malformed_token_authority_holds_everything_and_dead_letters_nothing(
    rig: Rig, case: str
) -> None:
    """The token endpoint or its discovery document answers junk: every call fails before
    Dynamics; operations are held or retried, never dead-lettered; the check says what is wrong
    (credentials: one administrator alert); the secret appears nowhere; all drains after."""
    rule, detail = AUTHORITY[case]
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 2)
    _pause(conn, *team.mentors)
    admin.set_faults([rule])
    worker = await rig.engine()
    await worker.worker.run_once()
    ctx = worker.worker.ctx
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    auth = detail.startswith("auth")
    assert result["ok"] is False
    assert result["detail"].startswith(detail), result["detail"]
    assert _one_line(result["detail"])
    assert result["auth"] is auth  # alerted already by the worker's first refused call
    assert {status for status, _ in _latest(conn, team).values()} == {"pending"}
    assert _letters(conn, team) == {}
    assert _patches(admin, team.pairs[0][1]) + _patches(admin, team.pairs[1][1]) == 0
    alerts = conn.execute(
        "SELECT payload, details->>'detail' FROM alerts WHERE id > %s AND kind = 'auth_failure'",
        [rig.watch.marks["alerts"]],
    ).fetchall()
    assert alerts == ([({"type": "hlf_sync_auth_failure", "contract": "dataverse-v9"},
                        result["detail"])] if auth else [])  # fmt: skip
    admin.clear_faults()
    result = await check_credentials(worker.pool, worker.client, ctx.breaker, rig.clock)
    assert result["ok"] is True
    rig.clock.advance(61)
    await _cycles(worker, rig.clock, rounds=3)
    assert {status for status, _ in _latest(conn, team).values()} == {"succeeded"}
    assert rig.watch.leaks(conn) == set()


PAGES = {
    "an empty object": (200, "{}", None, Permanent,
                        "HTTP 200: page does not follow the contract: page is not an OData "
                        "collection (no `value` array)"),
    "value not a list": (200, '{"value": {"contactid": 1}}', None, Permanent,
                         "HTTP 200: page does not follow the contract: page is not an OData "
                         "collection (no `value` array)"),
    "a JSON list": (200, "[]", None, Permanent,
                    "HTTP 200: page does not follow the contract: page is not an OData "
                    "collection (no `value` array)"),
    "nextLink a number": (200, '{"value": [], "@odata.nextLink": 7}', None, Permanent,
                          "HTTP 200: page does not follow the contract: @odata.nextLink is not "
                          "a string"),
    "nextLink to another host": (
        200, '{"value": [], "@odata.nextLink": "https://evil.example/api/data/v9.2/contacts"}',
        None, Permanent,
        "permanent: page does not follow the contract: @odata.nextLink leaves the organisation",
    ),
    "nextLink back to the first page": (
        200, '{"value": [], "@odata.nextLink": "{first}"}', None, Permanent,
        "permanent: page does not follow the contract: @odata.nextLink repeats a page",
    ),
    "an HTML page": (200, HTML_PAGE, "text/html", Transient,
                     "HTTP 200: expected JSON, got a text/html body"),
    "truncated JSON": (200, '{"value": [{"contactid": "', None, Transient,
                       "HTTP 200: truncated or invalid JSON body"),
    "an empty body": (200, "", None, Transient, "HTTP 200: expected JSON, got an empty body"),
    "503 with an HTML page": (503, HTML_PAGE, "text/html", Transient,
                              "HTTP 503: server did not complete the request: text/html body"),
}  # fmt: skip


@pytest.mark.parametrize("case", PAGES)
async def test_a_malformed_listing_page_stops_reconciliation_with_a_clear_error(
    rig: Rig, case: str
) -> None:
    """Reconciliation reads a page it cannot trust: it stops with the classified failure and
    queues nothing (an unreadable page must not read as "nobody is listed"); the operation
    queued before is still there; on the same pool the next reconciliation works."""
    status, body, content_type, kind, summary = PAGES[case]
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 3)
    waiting, waiting_contact = team.pairs[0]
    _pause(conn, waiting)
    worker = await rig.engine()
    conf = _settings(rig.sandbox, "postgresql://unused")
    collection = f"/api/data/v9.2/{conf.dynamics_entity_set}"
    first = f"{rig.sandbox.url}{collection}?$select=contactid,{conf.dynamics_listing_field}"
    rule: dict[str, Any] = {"method": "GET", "path": collection, "status": status,
                            "body": body.replace("{first}", first)}  # fmt: skip
    if content_type:
        rule["content_type"] = content_type
    admin.set_faults([rule])
    was = _snapshot(conn)
    with pytest.raises(SyncFailure) as failed:
        await reconcile_mod.reconcile(
            worker.pool, worker.client, now=rig.clock.now(), dry_run=False, page_size=100
        )
    assert type(failed.value) is kind
    assert failed.value.summary() == summary
    assert _snapshot(conn) == was
    admin.clear_faults()
    report = await reconcile_mod.reconcile(
        worker.pool, worker.client, now=rig.clock.now(), dry_run=False, page_size=100
    )
    assert report.contacts_read == 3
    await _cycles(worker, rig.clock, rounds=2)
    assert _latest(conn, team)[waiting] == ("succeeded", 1)
    assert _listed(admin)[str(waiting_contact)] is False
    assert rig.watch.leaks(conn) == set()


async def test_listing_rows_of_junk_are_skipped_and_counted_not_trusted(rig: Rig) -> None:
    """Rows without a usable id or listing value are skipped and counted, never read as a
    contact; the operation queued before is untouched."""
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 2)
    waiting, _ = team.pairs[0]
    _pause(conn, waiting)
    worker = await rig.engine()
    conf = _settings(rig.sandbox, "postgresql://unused")
    field_name = conf.dynamics_listing_field
    junk = {"value": [{"contactid": "nope", field_name: True},
                      {"contactid": str(uuid.uuid4()), field_name: "yes"},
                      5, None, {field_name: False}, {"contactid": str(uuid.uuid4())}]}  # fmt: skip
    admin.set_faults([{"method": "GET", "path": f"/api/data/v9.2/{conf.dynamics_entity_set}",
                       "status": 200, "body": json.dumps(junk)}])  # fmt: skip
    was = _snapshot(conn)
    report = await reconcile_mod.reconcile(
        worker.pool, worker.client, now=rig.clock.now(), dry_run=True, page_size=100
    )
    assert (report.contacts_read, worker.client.skipped_rows) == (0, 6)
    assert _snapshot(conn) == was
    assert rig.watch.named("dataverse.listings.skipped_rows") == [
        {"event": "dataverse.listings.skipped_rows", "count": 6, "log_level": "warning"}
    ]
    assert rig.watch.leaks(conn) == set()


# --- FCM answers ---------------------------------------------------------------------------


def _fcm_error(status: int, google_status: object, code: object, message: str) -> str:
    detail = {"@type": fcm_wire.FCM_ERROR_TYPE, "errorCode": code}
    return json.dumps(
        {"error": {"code": status, "status": google_status, "message": message,
                   "details": [detail]}}
    )  # fmt: skip


@dataclass(frozen=True)
class BadPush:
    status: int
    body: str
    content_type: str | None
    outcome: str  # what the delivery it hit becomes: "pending" (retry), "failed", "delivered"
    says: str | None  # its last_error
    wait_s: float = 5.0  # how long before it is tried again
    retry_after: float | None = None


NO_NAME = "FCM answered 2xx without a message name"
PUSHES = {
    "200 with an HTML page": BadPush(200, HTML_PAGE, "text/html", "pending", NO_NAME),
    "200 with truncated JSON": BadPush(200, '{"name": "projects/', None, "pending", NO_NAME),
    "200 without a name": BadPush(200, '{"nome": "projects/x/messages/1"}', None, "pending",
                                  NO_NAME),
    "200 with a name that is not a string": BadPush(200, '{"name": 42}', None, "pending", NO_NAME),
    "200 with an empty body": BadPush(200, "", None, "pending", NO_NAME),
    "500 with an HTML page": BadPush(500, HTML_PAGE, "text/html", "pending", "HTTP 500"),
    "503 with an unknown error code": BadPush(
        503, _fcm_error(503, "UNAVAILABLE", "BRAND_NEW_OUTAGE", "try later"), None, "pending",
        "BRAND_NEW_OUTAGE: try later",
    ),
    "429 with a billion-second Retry-After": BadPush(
        429, "", None, "pending", "HTTP 429", wait_s=3600.0, retry_after=1e9
    ),
    "400 with an unknown error code": BadPush(
        400, _fcm_error(400, "FAILED_PRECONDITION", "BRAND_NEW_CODE", "a rule\nwe never saw"),
        None, "failed", "BRAND_NEW_CODE: a rule we never saw",
    ),
    "400 with details of the wrong shape": BadPush(
        400, '{"error": {"status": 5, "details": "none", "message": ["x"]}}', None, "failed",
        "HTTP 400: ['x']",
    ),
    "400 with an error that is a string": BadPush(400, '{"error": "bad"}', None, "failed",
                                                  "HTTP 400"),
    "404 with an empty body": BadPush(404, "", None, "failed", "HTTP 404"),
    "418 with plain text": BadPush(418, "I'm a teapot", "text/plain", "failed", "HTTP 418"),
    "401 with an HTML page": BadPush(401, HTML_PAGE, "text/html", "delivered", None),
}  # fmt: skip


def _alert_for(conn: Conn, team: Team, mentor: uuid.UUID, devices: list[str]) -> int:
    """A sync-failure alert with one delivery per device, as the worker queues them."""
    alert: int = one(
        conn,
        "INSERT INTO alerts (kind, incident_key, mentor_id, organization_id, payload)"
        " VALUES ('sync_failure', %s, %s, %s, %s) RETURNING id",
        [f"sweep:{uuid.uuid4()}", mentor, team.org, Jsonb(_push(team, mentor)[1])],
    )
    for device in devices:
        user = one(conn, "SELECT user_id FROM device_tokens WHERE token = %s", [device])
        conn.execute(
            "INSERT INTO alert_deliveries (alert_id, user_id, device_token) VALUES (%s, %s, %s)",
            [alert, user, device],
        )
    return alert


def _deliveries(conn: Conn, alert: int) -> list[tuple[str, str | None, datetime, str]]:
    """(status, last_error, next_attempt_at, device_token) of an alert's deliveries."""
    return conn.execute(
        "SELECT status, last_error, next_attempt_at, device_token FROM alert_deliveries"
        " WHERE alert_id = %s ORDER BY status, id",
        [alert],
    ).fetchall()


def _second_device(conn: Conn, team: Team) -> str:
    device = f"fcm-device-{uuid.uuid4().hex}"
    make_user(conn, team.org, coordinates=(team.chapter,), token=device)
    return device


@pytest.mark.parametrize("case", PUSHES)
async def test_a_malformed_fcm_answer_is_retried_or_failed_with_a_reason(
    rig: Rig, case: str
) -> None:
    """One of two queued pushes is answered badly: it is retried (after the provider's wait,
    capped) or failed with a one-line reason; the other is delivered; the dispatcher goes on,
    and device tokens appear in no log."""
    bad, conn, admin = PUSHES[case], rig.conn, rig.admin
    team = _team(conn, admin, 1)
    mentor = team.mentors[0]
    devices = [team.device, _second_device(conn, team)]
    alert = _alert_for(conn, team, mentor, devices)  # queued before the bad answer
    rule: dict[str, Any] = {"kind": "fcm", "status": bad.status, "body": bad.body, "times": 1}
    if bad.content_type:
        rule["content_type"] = bad.content_type
    if bad.retry_after is not None:
        rule["retry_after"] = bad.retry_after
    admin.set_faults([rule])
    worker = await rig.engine()
    assert await worker.dispatcher.run_once() == 2
    got = _deliveries(conn, alert)
    assert sorted(row[0] for row in got) == sorted(["delivered", bad.outcome])
    _, error, next_at, hit_device = next(row for row in got if row[0] == bad.outcome)
    if bad.outcome != "delivered":
        assert error is not None
        assert error.startswith(bad.says or ""), error
        assert _one_line(error)
    if bad.outcome == "pending":
        assert (next_at - rig.clock.now()).total_seconds() == pytest.approx(bad.wait_s)
    rig.clock.advance(bad.wait_s + 1)
    await worker.dispatcher.run_once()
    final = sorted(row[0] for row in _deliveries(conn, alert))
    expected = ["delivered", "failed"] if bad.outcome == "failed" else ["delivered", "delivered"]
    assert final == expected
    # Each device got its push exactly once; the failed one none.
    tokens = sorted(m["token"] for m in admin.fcm_messages())
    assert tokens == sorted(d for d in devices if bad.outcome != "failed" or d != hit_device)
    google_tokens = [r for r in admin.requests(kind="token") if r["path"] == "/token"]
    assert len(google_tokens) == (2 if bad.status == 401 else 1)  # a 401 refreshes it once
    later = _alert_for(conn, team, mentor, [team.device])  # no crash: the next push goes out
    await worker.dispatcher.run_once()
    assert [row[0] for row in _deliveries(conn, later)] == ["delivered"]
    # Device tokens live in their rows, never in a log line: only the output is searched.
    assert {d for d in devices if d in rig.watch.text()} == set()
    assert rig.watch.leaks(conn) == set()


GOOGLE_TOKEN = {
    "an HTML page": (200, HTML_PAGE, "text/html",
                     "transient: FCM token endpoint answer unreadable"),
    "a JSON list": (200, "[]", None, "transient: FCM token endpoint answer unreadable"),
    "expires_in a word": (200, '{"access_token": "x", "expires_in": "soon"}', None,
                          "transient: FCM token endpoint answer unreadable"),
    "an empty object": (200, "{}", None, "auth: FCM token request refused"),
    "access_token a number": (200, '{"access_token": 5, "expires_in": 3600}', None,
                              "auth: FCM token endpoint answered without an access token"),
    # Not a 5xx: google-auth itself retries those with real sleeps, seconds of them.
    "400 with an HTML page": (400, HTML_PAGE, "text/html", "auth: FCM token request refused"),
    "401 with an OAuth error": (401, '{"error": "invalid_grant", "error_description": "bad"}',
                                None, "auth: FCM token request refused: invalid_grant"),
}  # fmt: skip


@pytest.mark.parametrize("case", GOOGLE_TOKEN)
async def test_a_malformed_fcm_token_answer_holds_the_pushes_and_crashes_nothing(
    rig: Rig, case: str
) -> None:
    """FCM's OAuth token endpoint answers junk: no push can go, each waits with a reason, the
    dispatcher does not raise; once the endpoint is sane every push is delivered once."""
    status, body, content_type, says = GOOGLE_TOKEN[case]
    conn, admin = rig.conn, rig.admin
    team = _team(conn, admin, 1)
    devices = [team.device, _second_device(conn, team)]
    alert = _alert_for(conn, team, team.mentors[0], devices)
    rule: dict[str, Any] = {"kind": "token", "path": "/token", "status": status, "body": body}
    if content_type:
        rule["content_type"] = content_type
    admin.set_faults([rule])
    worker = await rig.engine()
    assert await worker.dispatcher.run_once() == 2
    got = _deliveries(conn, alert)
    assert [row[0] for row in got] == ["pending", "pending"]
    assert all(row[1] and row[1].startswith(says) and _one_line(row[1]) for row in got), got
    admin.clear_faults()
    rig.clock.advance(600)
    await worker.dispatcher.run_once()
    assert [row[0] for row in _deliveries(conn, alert)] == ["delivered", "delivered"]
    assert sorted(m["token"] for m in admin.fcm_messages()) == sorted(devices)
    assert rig.watch.leaks(conn) == set()


# --- API requests --------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def world(db_url: str) -> world_mod.World:
    """The API tests' two organisations (tests/integration/api/world.py), built once, first:
    the database is new then, as the world expects."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return world_mod.build(conn)


@pytest.fixture
async def api(db_url: str, world: world_mod.World) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process; an exception escaping it comes back as a 500, as a server sends it."""
    app = create_app(Settings(database_url=db_url, jwt_secret=JWT_SECRET, db_pool_size=2))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
    ):
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _cursor(doc: object) -> str:
    raw = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def _api_still_works(api: httpx.AsyncClient, world: world_mod.World) -> None:
    """No crash: a good request right after gets exactly what it should."""
    token = mint_token(JWT_SECRET, world.users["admin_a"], ttl_s=60)
    response = await api.get("/api/v1/mentors?limit=200", headers=_bearer(token))
    assert response.status_code == 200
    assert {m["id"] for m in response.json()["items"]} == {
        str(m) for m in world.visible_mentors("admin_a")
    }


J = {"content-type": "application/json"}
NOT_UTF8 = _cursor(b'{"v": 1, "k": "\xff"}')
REQUESTS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "mentor id not a UUID": ("GET", "/api/v1/mentors/not-a-uuid/sync", {}, 422),
    "mentor id a UUID with a tail": ("GET", "/api/v1/mentors/{mentor}x/sync", {}, 422),
    "mentor id a NUL": ("GET", "/api/v1/mentors/%00/sync", {}, 422),
    "mentor id 10 kB long": ("GET", "/api/v1/mentors/" + "9" * 10_000 + "/sync", {}, 422),
    "mentor id unknown": ("GET", "/api/v1/mentors/{unknown}/sync", {}, 404),
    "force-sync of a number": ("POST", "/api/v1/mentors/123/force-sync", {}, 422),
    "force-sync of an unknown mentor": ("POST", "/api/v1/mentors/{unknown}/force-sync", {}, 404),
    "audit of an unknown mentor": ("GET", "/api/v1/mentors/{unknown}/audit", {}, 404),
    "audit cursor garbage": ("GET", "/api/v1/mentors/{mentor}/audit?cursor=garbage", {}, 400),
    "mentors cursor garbage": ("GET", "/api/v1/mentors?cursor=%25%25%25", {}, 400),
    "mentors cursor of another version": (
        "GET", f"/api/v1/mentors?cursor={_cursor({'v': 2, 'k': 'x'})}", {}, 400),
    "mentors cursor with a number key": (
        "GET", f"/api/v1/mentors?cursor={_cursor({'v': 1, 'k': 5})}", {}, 400),
    "mentors cursor with an object key": (
        "GET", f"/api/v1/mentors?cursor={_cursor({'v': 1, 'k': {'id': 1}})}", {}, 400),
    "mentors cursor a JSON list": ("GET", f"/api/v1/mentors?cursor={_cursor([1])}", {}, 400),
    "mentors cursor not UTF-8": ("GET", f"/api/v1/mentors?cursor={NOT_UTF8}", {}, 400),
    "mentors cursor too long": ("GET", "/api/v1/mentors?cursor=" + "a" * 201, {}, 422),
    "dead-letters cursor beyond bigint": (
        "GET", f"/api/v1/dead-letters?cursor={_cursor({'v': 1, 'k': 2**63})}", {}, 400),
    "dead-letters cursor a fraction": (
        "GET", f"/api/v1/dead-letters?cursor={_cursor({'v': 1, 'k': 1.5})}", {}, 400),
    "dead-letters cursor a boolean": (
        "GET", f"/api/v1/dead-letters?cursor={_cursor({'v': 1, 'k': True})}", {}, 400),
    "dead-letters cursor a numeric string": (
        "GET", f"/api/v1/dead-letters?cursor={_cursor({'v': 1, 'k': '5'})}", {}, 400),
    "dead-letters cursor negative": (
        "GET", f"/api/v1/dead-letters?cursor={_cursor({'v': 1, 'k': -1})}", {}, 400),
    "alerts cursor garbage": ("GET", "/api/v1/alerts?cursor=!!", {}, 400),
    "limit zero": ("GET", "/api/v1/mentors?limit=0", {}, 422),
    "limit above the maximum": ("GET", "/api/v1/mentors?limit=201", {}, 422),
    "limit negative": ("GET", "/api/v1/dead-letters?limit=-1", {}, 422),
    "limit a word": ("GET", "/api/v1/alerts?limit=all", {}, 422),
    "limit in exponent form": ("GET", "/api/v1/mentors?limit=1e3", {}, 422),
    "limit beyond any integer": ("GET", "/api/v1/mentors?limit=" + "9" * 40, {}, 422),
    "dead-letters status unknown": ("GET", "/api/v1/dead-letters?status=bogus", {}, 422),
    "letter id a word": ("POST", "/api/v1/dead-letters/abc/requeue", {}, 422),
    "letter id zero": ("POST", "/api/v1/dead-letters/0/requeue", {}, 422),
    "letter id negative": ("POST", "/api/v1/dead-letters/-5/requeue", {}, 422),
    "letter id beyond bigint": ("POST", f"/api/v1/dead-letters/{2**63}/requeue", {}, 422),
    "letter id unknown": ("POST", "/api/v1/dead-letters/999999999/requeue", {}, 404),
    "resolve: invalid JSON": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                              {"content": b"{", "headers": J}, 422),
    "resolve: a JSON list": ("POST", "/api/v1/dead-letters/{letter}/resolve", {"json": []}, 422),
    "resolve: a JSON string": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": "done"}, 422),
    "resolve: note a number": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": {"note": 5}}, 422),
    "resolve: note empty": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                            {"json": {"note": ""}}, 422),
    "resolve: note blank": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                            {"json": {"note": " \t\n "}}, 422),
    "resolve: note too long": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                               {"json": {"note": "x" * 2001}}, 422),
    "resolve: note with a NUL": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                                 {"json": {"note": "fixed\u0000by hand"}}, 422),
    "resolve: body not UTF-8": ("POST", "/api/v1/dead-letters/{letter}/resolve",
                                {"content": b'{"note": "\xff\xfe"}', "headers": J}, 400),
    "resolve: JSON nested 100,000 deep": (
        "POST", "/api/v1/dead-letters/{letter}/resolve",
        {"content": b"[" * 100_000 + b"]" * 100_000, "headers": J}, 400),
    "resolve: no body": ("POST", "/api/v1/dead-letters/{letter}/resolve", {}, 422),
    "resolve: a form instead of JSON": (
        "POST", "/api/v1/dead-letters/{letter}/resolve",
        {"content": b"note=done", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        422),
    "dashboard: mentor id not a UUID": ("GET", "/dashboard/mentors/not-a-uuid", {}, 422),
    "dashboard: cursor garbage": ("GET", "/dashboard/mentors?cursor=garbage", {}, 400),
    "dashboard: letter id zero": ("POST", "/dashboard/dead-letters/0/requeue", {}, 422),
    "an unknown route": ("GET", "/api/v1/nothing-here", {}, 404),
    "a method the route lacks": ("DELETE", "/api/v1/mentors", {}, 405),
}  # fmt: skip


@pytest.mark.parametrize("case", REQUESTS)
async def test_a_malformed_api_request_is_a_4xx_problem_and_changes_nothing(
    api: httpx.AsyncClient, world: world_mod.World, conn: Conn, watch: Watch, case: str
) -> None:
    """Bad ids, cursors, limits and bodies: a 4xx application/problem+json with a one-line
    detail, never a 5xx; nothing in the queue or the dead letters moves; the API goes on."""
    method, path, options, status = REQUESTS[case]
    places = {"mentor": world.mentors["m_a1"], "unknown": uuid.uuid4(),
              "letter": world.dead_letters["m_a1"]}  # fmt: skip
    token = mint_token(JWT_SECRET, world.users["admin_a"], ttl_s=60)
    options = {**options, "headers": {**options.get("headers", {}), **_bearer(token)}}
    was = _snapshot(conn)
    response = await api.request(method, path.format(**places), **options)
    assert (response.status_code, response.headers["content-type"]) == (
        status, "application/problem+json"
    ), response.text  # fmt: skip
    problem = response.json()
    assert (problem["status"], problem["title"]) == (status, HTTPStatus(status).phrase)
    assert _one_line(problem.get("detail") or problem["title"])
    assert _snapshot(conn) == was
    assert watch.named("api_unhandled") == []
    await _api_still_works(api, world)
    assert watch.leaks(conn, response.text) == set()


# --- access tokens -------------------------------------------------------------------------


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
              "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(**changes: Any) -> str:
    return jwt.encode(_claims(**changes), JWT_SECRET, algorithm="HS256")


def _tampered() -> str:
    header, _payload, signature = _signed().split(".")
    payload = base64.urlsafe_b64encode(json.dumps(_claims(role="service_role")).encode())
    return f"{header}.{payload.decode().rstrip('=')}.{signature}"


def _hs512() -> str:
    with warnings.catch_warnings():  # the key is short for HS512: the point is the algorithm
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(_claims(), JWT_SECRET, algorithm="HS512")


TOKENS: dict[str, Callable[[], str]] = {
    "forged signature": lambda: jwt.encode(_claims(), "another-secret-of-32-bytes-or-more!!",
                                           algorithm="HS256"),
    "payload swapped under a good signature": _tampered,
    "signature stripped": lambda: _signed().rsplit(".", 1)[0] + ".",
    "expired": lambda: _signed(exp=int(time.time()) - 5),
    "not valid yet": lambda: _signed(nbf=int(time.time()) + 3600),
    "alg none": lambda: jwt.encode(_claims(), None, algorithm="none"),
    "HS512 with the right secret": _hs512,
    "wrong audience": lambda: _signed(aud="anon"),
    "audience list without ours": lambda: _signed(aud=["service", "anon"]),
    "missing sub": lambda: _signed(sub=None),
    "missing exp": lambda: _signed(exp=None),
    "missing aud": lambda: _signed(aud=None),
    "sub not a user id": lambda: _signed(sub="admin"),
    "exp a word": lambda: _signed(exp="tomorrow"),
    "role service_role": lambda: _signed(role="service_role"),
    "role anon": lambda: _signed(role="anon"),
    "no role": lambda: _signed(role=None),
    "garbage": lambda: "not.a.token",
    "one segment": lambda: "eyJhbGciOiJIUzI1NiJ9",
    "20 kB of base64": lambda: base64.urlsafe_b64encode(b"\x00" * 15_000).decode(),
}  # fmt: skip


@pytest.mark.parametrize("case", TOKENS)
async def test_a_bad_token_is_a_401_everywhere_and_changes_nothing(
    api: httpx.AsyncClient, world: world_mod.World, conn: Conn, watch: Watch, case: str
) -> None:
    """Forged, expired, alg none, wrong audience or role, missing claims, garbage: 401 problem
    from the API (reading and writing), 401 from the dashboard's sign-in with no cookie set, a
    redirect to sign in for a session cookie; the token is never echoed; nothing moves."""
    token = TOKENS[case]()
    was = _snapshot(conn)
    letter = world.dead_letters["m_a1"]
    for method, path in (("GET", "/api/v1/mentors"), ("GET", "/api/v1/me"),
                         ("POST", f"/api/v1/dead-letters/{letter}/requeue")):  # fmt: skip
        response = await api.request(method, path, headers=_bearer(token))
        assert (response.status_code, response.headers["content-type"]) == (
            401, "application/problem+json"
        ), (path, response.text)  # fmt: skip
        assert response.headers["www-authenticate"] == "Bearer"
        assert _one_line(response.json()["detail"])
        assert token not in response.text
    sign_in = await api.post("/dashboard/login", data={"token": token})
    assert sign_in.status_code == 401
    assert "set-cookie" not in sign_in.headers
    assert token not in sign_in.text
    api.cookies.set("hlfsync_session", token, path="/dashboard")
    page = await api.get("/dashboard/mentors")
    api.cookies.clear()
    assert (page.status_code, page.headers["location"]) == (303, "/dashboard/login")
    assert _snapshot(conn) == was
    assert watch.named("api_unhandled") == []
    assert token not in watch.text()
    await _api_still_works(api, world)
    assert watch.leaks(conn) == set()


# --- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadSetting:
    env: dict[str, str]
    says: str  # the one line starts "hlfsync: " and then this
    command: tuple[str, ...] = ("status",)
    dotenv: bytes | None = None


DYNAMICS_OK = {
    "HLFSYNC_DYNAMICS_URL": "https://hlf.crm4.dynamics.invalid",
    "HLFSYNC_DYNAMICS_TENANT_ID": "tenant", "HLFSYNC_DYNAMICS_CLIENT_ID": "client",
}  # fmt: skip
SETTINGS = {
    "retries a word": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "three"},
                                 "invalid setting HLFSYNC_RETRY_MAX_RETRIES: "),
    "retries negative": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "-1"},
                                   "invalid setting HLFSYNC_RETRY_MAX_RETRIES: "),
    "retries waiting for weeks": BadSetting({"HLFSYNC_RETRY_MAX_RETRIES": "20"},
                                            "invalid settings: HLFSYNC_RETRY_*: "),
    "base delay zero": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "0"},
                                  "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "base delay NaN": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "nan"},
                                 "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "base delay infinite": BadSetting({"HLFSYNC_RETRY_BASE_DELAY": "inf"},
                                      "invalid setting HLFSYNC_RETRY_BASE_DELAY: "),
    "jitter above 1": BadSetting({"HLFSYNC_RETRY_JITTER": "2"},
                                 "invalid setting HLFSYNC_RETRY_JITTER: "),
    "breaker threshold zero": BadSetting({"HLFSYNC_BREAKER_FAILURE_THRESHOLD": "0"},
                                         "invalid setting HLFSYNC_BREAKER_FAILURE_THRESHOLD: "),
    "cool-down a word": BadSetting({"HLFSYNC_BREAKER_COOLDOWN": "a minute"},
                                   "invalid setting HLFSYNC_BREAKER_COOLDOWN: "),
    "concurrency empty": BadSetting({"HLFSYNC_WORKER_CONCURRENCY": ""},
                                    "invalid setting HLFSYNC_WORKER_CONCURRENCY: "),
    "concurrency huge": BadSetting({"HLFSYNC_WORKER_CONCURRENCY": "100000"},
                                   "invalid setting HLFSYNC_WORKER_CONCURRENCY: "),
    "pool size zero": BadSetting({"HLFSYNC_DB_POOL_SIZE": "0"},
                                 "invalid setting HLFSYNC_DB_POOL_SIZE: "),
    "API port out of range": BadSetting({"HLFSYNC_API_PORT": "70000"},
                                        "invalid setting HLFSYNC_API_PORT: "),
    "sync flag a maybe": BadSetting({"HLFSYNC_SYNC_ENABLED": "perhaps"},
                                    "invalid setting HLFSYNC_SYNC_ENABLED: "),
    "unknown contract": BadSetting({"HLFSYNC_DYNAMICS_CONTRACT": "soap-v1"},
                                   "invalid setting HLFSYNC_DYNAMICS_CONTRACT: "),
    "Dynamics URL not a URL": BadSetting({"HLFSYNC_DYNAMICS_URL": "not a url"},
                                         "invalid setting HLFSYNC_DYNAMICS_URL: "),
    "Dynamics URL with a key, misspelt": BadSetting(
        {"HLFSYNC_DYNAMICS_URL": f"htps://hooks.example/sync?code={CLIENT_SECRET}"},
        "invalid setting HLFSYNC_DYNAMICS_URL: "),
    "entity set with SQL in it": BadSetting({"HLFSYNC_DYNAMICS_ENTITY_SET": "contacts;drop"},
                                            "invalid setting HLFSYNC_DYNAMICS_ENTITY_SET: "),
    "listing field with a space": BadSetting({"HLFSYNC_DYNAMICS_LISTING_FIELD": "hlf listed"},
                                             "invalid setting HLFSYNC_DYNAMICS_LISTING_FIELD: "),
    "Dynamics timeout zero": BadSetting({"HLFSYNC_DYNAMICS_TIMEOUT": "0"},
                                        "invalid setting HLFSYNC_DYNAMICS_TIMEOUT: "),
    "page size above Dataverse's": BadSetting({"HLFSYNC_DYNAMICS_PAGE_SIZE": "5001"},
                                              "invalid setting HLFSYNC_DYNAMICS_PAGE_SIZE: "),
    "database URL of another kind": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"mysql://svc:{CLIENT_SECRET}@db/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database URL unparsable": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://svc:{CLIENT_SECRET}@[::1/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database URL not UTF-8": BadSetting(
        {"HLFSYNC_DATABASE_URL": "postgresql://svc:pass\udcff@127.0.0.1:1/hlf"},
        "invalid setting HLFSYNC_DATABASE_URL: "),
    "database unreachable, password in the user info": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://svc:{CLIENT_SECRET}@127.0.0.1:1/hlf"},
        "cannot reach the database at postgresql://svc:***@127.0.0.1:1/hlf: "),
    "database unreachable, password in the query": BadSetting(
        {"HLFSYNC_DATABASE_URL": f"postgresql://127.0.0.1:1/hlf?password={CLIENT_SECRET}"},
        "cannot reach the database at postgresql://127.0.0.1:1/hlf?password=***: "),
    "time zone unknown": BadSetting({"HLFSYNC_TIMEZONE": "Mars/Olympus"},
                                    "invalid setting HLFSYNC_TIMEZONE: "),
    "time zone a path": BadSetting({"HLFSYNC_TIMEZONE": "../../etc/passwd"},
                                   "invalid setting HLFSYNC_TIMEZONE: "),
    # Rich markup: "[/]" raised MarkupError (a traceback), "[bold]" vanished from the line.
    "time zone that reads as markup": BadSetting(
        {"HLFSYNC_TIMEZONE": "[/]"}, "invalid setting HLFSYNC_TIMEZONE: unknown time zone '[/]'"),
    "time zone with a markup tag": BadSetting(
        {"HLFSYNC_TIMEZONE": "[bold]Oslo"},
        "invalid setting HLFSYNC_TIMEZONE: unknown time zone '[bold]Oslo'"),
    "schedule in words": BadSetting({"HLFSYNC_EXPIRY_SCHEDULE": "every night"},
                                    "invalid setting HLFSYNC_EXPIRY_SCHEDULE: "),
    "schedule minute 61": BadSetting({"HLFSYNC_HEALTH_SCHEDULE": "61 * * * *"},
                                     "invalid setting HLFSYNC_HEALTH_SCHEDULE: "),
    "log level unknown": BadSetting({"HLFSYNC_LOG_LEVEL": "loud"},
                                    "invalid setting HLFSYNC_LOG_LEVEL: "),
    "FCM endpoint empty": BadSetting({"HLFSYNC_FCM_ENDPOINT": ""},
                                     "invalid setting HLFSYNC_FCM_ENDPOINT: "),
    "FCM key without a project": BadSetting({"HLFSYNC_FCM_CREDENTIALS": "/nonexistent.json"},
                                            "invalid settings: HLFSYNC_FCM_PROJECT_ID is required"),
    ".env not UTF-8": BadSetting({}, "invalid settings file .env: not UTF-8 text",
                                 dotenv=b"HLFSYNC_RETRY_MAX_RETRIES=\xff\xfe3\n"),
    ".env with a bad value": BadSetting({}, "invalid setting HLFSYNC_WORKER_CONCURRENCY: ",
                                        dotenv=b"HLFSYNC_WORKER_CONCURRENCY=0\n"),
    # Checked when the command builds its Dynamics client, FCM notifier or token signer:
    "authority over plain http": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_AUTHORITY": "http://login.example.invalid/tenant"},
        "invalid setting HLFSYNC_DYNAMICS_AUTHORITY: ", ("health",)),
    "CA bundle missing": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CA_BUNDLE": "{tmp}/no-such-ca.pem"},
        "invalid setting HLFSYNC_DYNAMICS_CA_BUNDLE: ", ("health",)),
    "CA bundle not a certificate": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CA_BUNDLE": "{tmp}/not-a-ca.pem"},
        "invalid setting HLFSYNC_DYNAMICS_CA_BUNDLE: ", ("health",)),
    "client secret empty": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_DYNAMICS_CLIENT_SECRET": ""},
        "missing setting HLFSYNC_DYNAMICS_CLIENT_SECRET: ", ("health",)),
    "Dynamics URL missing": BadSetting(
        {"HLFSYNC_DYNAMICS_TENANT_ID": "tenant", "HLFSYNC_DYNAMICS_CLIENT_ID": "client"},
        "missing setting HLFSYNC_DYNAMICS_URL: ", ("health",)),
    "webhook without its secret": BadSetting(
        {"HLFSYNC_DYNAMICS_CONTRACT": "webhook-v1",
         "HLFSYNC_DYNAMICS_URL": "https://portal.example.invalid/hook"},
        "missing setting HLFSYNC_DYNAMICS_WEBHOOK_SECRET: ", ("health",)),
    "FCM key file missing": BadSetting(
        {**DYNAMICS_OK, "HLFSYNC_FCM_PROJECT_ID": "hlf-app",
         "HLFSYNC_FCM_CREDENTIALS": "{tmp}/no-such-key.json"},
        "invalid setting HLFSYNC_FCM_CREDENTIALS: ", ("worker", "--once")),
    "JWT secret too short": BadSetting(
        {"HLFSYNC_JWT_SECRET": "S3CRET-but-short"},
        "HLFSYNC_JWT_SECRET must be at least 32 characters",
        ("token", "--user", str(uuid.UUID(int=1)))),
}  # fmt: skip


@pytest.fixture
def structlog_config() -> Iterator[None]:
    """A command that gets past its settings configures structlog for the process: undo it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("structlog_config")
@pytest.mark.parametrize("case", SETTINGS)
def test_a_bad_setting_stops_the_command_with_one_line_naming_it(  # noqa: PLR0917
    conn: Conn, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], case: str,
) -> None:  # fmt: skip
    """Exit 2 and one line on stderr naming the setting: no traceback, no secret (the client
    secret and JWT secret are set in every case), nothing printed on stdout, queue untouched."""
    bad = SETTINGS[case]
    team_org = make_org(conn, "Sweep")
    _pause(conn, make_mentor(conn, team_org))  # a queued operation that must stay as it is
    was = _snapshot(conn)
    (tmp_path / "not-a-ca.pem").write_text("not a certificate\n")
    env = {
        "HLFSYNC_DATABASE_URL": db_url,
        "HLFSYNC_DATA_DIR": str(tmp_path / "data"),  # never the user's embedded server
        "HLFSYNC_DYNAMICS_CLIENT_SECRET": CLIENT_SECRET,
        "HLFSYNC_JWT_SECRET": JWT_SECRET,
        **{k: v.replace("{tmp}", str(tmp_path)) for k, v in bad.env.items()},
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if bad.dotenv is not None:
        (tmp_path / ".env").write_bytes(bad.dotenv)
    monkeypatch.setattr(sys, "argv", ["hlfsync", *bad.command])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    assert (exited.value.code, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hlfsync: {bad.says}"), lines[0]
    assert "Traceback" not in err
    assert {s for s in (CLIENT_SECRET, JWT_SECRET, "S3CRET-but-short") if s in err} == set()
    assert _snapshot(conn) == was


def test_a_real_process_with_an_unreadable_dotenv_says_one_line(
    db_url: str, tmp_path: Path
) -> None:
    """The same through a real `hlfsync` process (1 s): a .env that is not UTF-8, exit 2."""
    (tmp_path / ".env").write_bytes(b"HLFSYNC_TIMEZONE=Europe/Oslo\nHLFSYNC_X=\xff\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HLFSYNC_")}
    env |= {"HLFSYNC_DATABASE_URL": db_url, "HLFSYNC_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "hlfsync", "status"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "hlfsync: invalid settings file .env: not UTF-8 text (byte 0xff at offset 39)"
    ]
