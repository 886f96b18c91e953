"""The bad-input sweep's shared harness: the recognisable secrets, the watch on what a case
said and wrote (logs, output, rows), the worker rig over the sandbox and a team of mentors.

The fixtures that build them are in this package's conftest.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from hlfsync import services
from hlfsync.api import mint_token
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock, make_chapter, make_mentor, make_org, make_user, one
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer
from tests.integration.api import world as world_mod

Conn = psycopg.Connection[Any]

Engine = Callable[..., Awaitable[services.WorkerServices]]

# Recognisable secrets: none may ever be printed, logged or stored in a row.
CLIENT_SECRET = "sweep-client-S3CRET-4b1d9e-never-logged"

JWT_SECRET = "sweep-jwt-S3CRET-0123456789-abcdefghijklmnopqrstuvwxyz"

BEARER_PREFIXES = ("sbx-entra-", "sbx-google-")  # every access token the sandbox issues

HTML_PAGE = (
    "<html><head><title>502</title></head><body><h1>Bad Gateway</h1>\n<p>nginx</p></body></html>"
)

# What an earlier case may leave behind that would steer the next one: waiting operations and
# deliveries (finished here, never deleted), a tripped or paused breaker, failing credentials.
QUIET = (
    "UPDATE sync_queue SET status = 'superseded', finished_at = now(), locked_by = NULL,"
    " locked_until = NULL WHERE status IN ('pending', 'in_progress')",
    "UPDATE alert_deliveries SET status = 'failed', finished_at = now(), locked_until = NULL"
    " WHERE status IN ('pending', 'in_progress')",
    "UPDATE circuit_breakers SET state = 'closed', consecutive_failures = 0, opened_at = NULL,"
    " probe_started_at = NULL, paused_until = NULL, auth_failed = false,"
    " hold_reason = NULL",
    "UPDATE credential_health SET ok = true, failing_since = NULL",
)

WITH_ID = ("sync_queue", "dead_letter_queue", "audit_log", "alerts", "alert_deliveries",
           "scheduled_runs")  # fmt: skip

WITHOUT_ID = ("circuit_breakers", "credential_health")


def rows_as_text(conn: Conn, marks: dict[str, int]) -> str:
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
        haystack = "\n".join([self.text(), rows_as_text(conn, self.marks), *more])
        return {secret for secret in self.secrets if secret in haystack}

    def named(self, event: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


def one_line(text: str | None) -> bool:
    return bool(text) and "\n" not in (text or "") and "Traceback" not in (text or "")


def settings_for(sandbox: SandboxServer, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()
    }
    values.update(database_url=db_url, worker_concurrency=2, db_pool_size=2)
    values.update(extra)
    return Settings(**values)


@dataclass
class Rig:
    """Everything a worker case needs, in one argument."""

    conn: Conn
    admin: AdminClient
    sandbox: SandboxServer
    engine: Engine
    clock: FakeClock
    watch: Watch


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


def team(conn: Conn, admin: AdminClient, count: int) -> Team:
    org = make_org(conn, "Sweep")
    chapter = make_chapter(conn, org)
    device = f"fcm-device-{uuid.uuid4().hex}"
    make_user(conn, org, coordinates=(chapter,), token=device)
    team = Team(org, chapter, device)
    for _ in range(count):
        recruit(conn, admin, team)
    return team


def recruit(conn: Conn, admin: AdminClient, team: Team) -> tuple[uuid.UUID, uuid.UUID]:
    mentor = make_mentor(conn, team.org, chapters=(team.chapter,))
    contact = one(conn, "SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    admin.put_contacts([{"contactid": str(contact), "listed": True}])
    team.pairs.append((mentor, contact))
    return mentor, contact


def pause(conn: Conn, *mentors: uuid.UUID) -> None:
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE id = ANY(%s)", [list(mentors)])


def latest(conn: Conn, team: Team) -> dict[uuid.UUID, tuple[str, int]]:
    """Each of the team's mentors' latest operation: (status, attempt_count)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (mentor_id) mentor_id, status, attempt_count FROM sync_queue"
        " WHERE mentor_id = ANY(%s) ORDER BY mentor_id, id DESC",
        [team.mentors],
    ).fetchall()
    return {mentor: (status, attempts) for mentor, status, attempts in rows}


def snapshot(conn: Conn) -> list[tuple[Any, ...]]:
    """The queue and the dead letters as they stand, to prove a bad input changed nothing."""
    queue = conn.execute(
        "SELECT id, mentor_id, operation, status, attempt_count, throttle_count, next_attempt_at,"
        " md5(payload_json::text) FROM sync_queue ORDER BY id"
    ).fetchall()
    letters = conn.execute("SELECT id, sync_queue_id, status FROM dead_letter_queue ORDER BY id")
    return [*queue, *letters.fetchall()]


def letters(conn: Conn, team: Team) -> dict[uuid.UUID, tuple[str, int]]:
    """The team's dead letters: mentor → (failure_reason, attempt_count)."""
    rows = conn.execute(
        "SELECT mentor_id, failure_reason, attempt_count FROM dead_letter_queue"
        " WHERE mentor_id = ANY(%s)",
        [team.mentors],
    )
    return {mentor: (reason, attempts) for mentor, reason, attempts in rows.fetchall()}


def listed(admin: AdminClient) -> dict[str, bool]:
    return {c["contactid"]: c["listed"] for c in admin.contacts()}


def patches(admin: AdminClient, contact: uuid.UUID) -> int:
    return sum(
        1
        for r in admin.requests(kind="dataverse", method="PATCH")
        if r["contactid"] == str(contact)
    )


def errors_of(conn: Conn, mentor: uuid.UUID) -> list[str]:
    """The errors the audit log recorded for a mentor's attempts, oldest first."""
    rows = conn.execute(
        "SELECT details->>'error' FROM audit_log WHERE mentor_id = %s"
        " AND details->>'error' IS NOT NULL ORDER BY id",
        [mentor],
    ).fetchall()
    return [row[0] for row in rows]


async def cycles(worker: services.WorkerServices, clock: FakeClock, *, rounds: int,
                  step_s: float = 1.0) -> None:  # fmt: skip
    for _ in range(rounds):
        await worker.worker.run_once()
        await worker.dispatcher.run_once()
        clock.advance(step_s)


async def still_syncs(rig: Rig, team: Team, worker: services.WorkerServices) -> None:
    """No crash: a status change made after the bad input is synced by the same worker."""
    mentor, contact = recruit(rig.conn, rig.admin, team)
    pause(rig.conn, mentor)
    await cycles(worker, rig.clock, rounds=2)
    assert latest(rig.conn, team)[mentor] == ("succeeded", 1)
    assert listed(rig.admin)[str(contact)] is False


def push(team: Team, mentor: uuid.UUID, operation: str = "remove") -> tuple[str, dict[str, str]]:
    return (team.device, {"type": "hlf_sync_failure", "mentor_id": str(mentor),
                          "operation": operation})  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def cursor(doc: object) -> str:
    raw = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def api_still_works(api: httpx.AsyncClient, world: world_mod.World) -> None:
    """No crash: a good request right after gets exactly what it should."""
    token = mint_token(JWT_SECRET, world.users["admin_a"], ttl_s=60)
    response = await api.get("/api/v1/mentors?limit=200", headers=bearer(token))
    assert response.status_code == 200
    assert {m["id"] for m in response.json()["items"]} == {
        str(m) for m in world.visible_mentors("admin_a")
    }
