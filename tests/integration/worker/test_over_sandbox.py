"""The whole engine over real HTTPS against the sandbox: Dataverse, its token endpoint and FCM.

Time is a FakeClock (retry delays and cool-downs pass without waiting); every call is real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from hlfsync import services
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock, make_chapter, make_mentor, make_org, make_user
from hlfsync.worker.health import check_credentials
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]


@pytest.fixture
def clock() -> FakeClock:
    """Ahead of the database clock, so freshly queued rows are due.

    Ten seconds, not one (as in tests/integration/bad_input): beside three other xdist workers
    on a busy machine, setting up 250 mentors can take longer than a second, and rows queued
    after the lead ran out were not yet due in the first round.
    """
    return FakeClock(datetime.now(UTC) + timedelta(seconds=10))


def _settings(sandbox: SandboxServer, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()
    }
    values.update(database_url=db_url, **extra)
    return Settings(**values)


@pytest.fixture
async def engine(sandbox: SandboxServer, db_url: str, clock: FakeClock) -> AsyncIterator[Any]:
    """A worker wired to the sandbox by the production factories (real msal, httpx, FCM)."""
    built: list[services.WorkerServices] = []

    async def make(**extra: Any) -> services.WorkerServices:
        worker = await services.build_worker(_settings(sandbox, db_url, **extra), clock=clock)
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await worker.aclose()


def _mentors(
    conn: Conn, admin: AdminClient, count: int, *, token: str = "device-1"
) -> list[tuple[UUID, UUID]]:
    """Active mentors in one chapter with a coordinator's device; their contacts in the sandbox."""
    org = make_org(conn)
    chapter = make_chapter(conn, org)
    make_user(conn, org, coordinates=(chapter,), token=token)
    pairs = []
    for _ in range(count):
        mentor = make_mentor(conn, org, chapters=(chapter,))
        row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
        contact = row.fetchone()
        assert contact is not None
        pairs.append((mentor, contact[0]))
    admin.put_contacts([{"contactid": str(c), "listed": True} for _, c in pairs])
    return pairs


def _pause_all(conn: Conn) -> None:
    conn.execute("UPDATE peer_mentors SET status = 'paused' WHERE status = 'active'")


def _patches(admin: AdminClient) -> list[Any]:
    return [r for r in admin.requests(kind="dataverse") if r["method"] == "PATCH"]


async def _cycles(worker: Any, clock: FakeClock, *, rounds: int, step_s: float) -> None:
    for _ in range(rounds):
        await worker.worker.run_once()
        await worker.dispatcher.run_once()
        clock.advance(step_s)


async def test_persistent_503_dead_letters_and_pushes_exactly_the_minimal_payload(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Persistent 503: 4 PATCHes, a dead letter, one push of just {type, mentor_id, operation}."""
    ((mentor, contact),) = _mentors(conn, admin, 1)
    admin.set_faults([{"method": "PATCH", "kind": "dataverse", "status": 503}])
    _pause_all(conn)
    worker = await engine(breaker_failure_threshold=10)
    await _cycles(worker, clock, rounds=20, step_s=1)
    assert len(_patches(admin)) == 4
    assert conn.execute("SELECT status, attempt_count FROM sync_queue").fetchone() == (
        "dead_lettered", 4,
    )  # fmt: skip
    messages = admin.fcm_messages()
    assert [(m["token"], m["data"]) for m in messages] == [
        ("device-1", {"type": "hlf_sync_failure", "mentor_id": str(mentor), "operation": "remove"})
    ]
    assert admin.contacts()[0]["listed"] is True  # never applied
    assert contact is not None


async def test_breaker_trips_after_3_failures_and_no_patch_reaches_dynamics_while_open(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Three 503s in a row open the circuit; during the cool-down no PATCH reaches the sandbox."""
    _mentors(conn, admin, 6)
    admin.set_faults([{"method": "PATCH", "kind": "dataverse", "status": 503}])
    _pause_all(conn)
    worker = await engine(worker_concurrency=1, retry_max_retries=10, dynamics_batch_size=1)
    await _cycles(worker, clock, rounds=3, step_s=0.5)
    assert len(_patches(admin)) == 3
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    await _cycles(worker, clock, rounds=50, step_s=1)  # 50 s of a 60 s cool-down
    assert len(_patches(admin)) == 3
    admin.clear_faults()
    await _cycles(worker, clock, rounds=30, step_s=1)
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("closed",)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (6,)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert all(c["listed"] is False for c in admin.contacts())


async def test_429_retry_after_is_honoured_for_every_call(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """A 429 with Retry-After 30 stops all PATCHes until 30 s have passed; nothing is spent."""
    _mentors(conn, admin, 3)
    admin.set_faults([{"method": "PATCH", "kind": "dataverse", "status": 429, "retry_after": 30,
                       "times": 1}])  # fmt: skip
    _pause_all(conn)
    worker = await engine(worker_concurrency=1, dynamics_batch_size=1)
    await _cycles(worker, clock, rounds=29, step_s=1)
    assert len(_patches(admin)) == 1
    await _cycles(worker, clock, rounds=5, step_s=1)
    assert len(_patches(admin)) == 4
    rows = conn.execute("SELECT status, attempt_count, throttle_count FROM sync_queue").fetchall()
    assert sorted(rows) == [("succeeded", 1, 0), ("succeeded", 1, 0), ("succeeded", 1, 1)]
    assert conn.execute("SELECT state, consecutive_failures FROM circuit_breakers").fetchone() == (
        "closed", 0,
    )  # fmt: skip


async def test_credential_rejection_alerts_once_holds_everything_and_recovers(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Rejected credentials: one operators' alert (no organisation's phone gets it), no dead
    letter, nothing lost; recovery drains all."""
    org = make_org(conn, "Admins")
    make_user(conn, org, admin=True, token="admin-device")
    _mentors(conn, admin, 3)
    admin.set_faults(auth="reject")
    admin.expire_tokens()
    _pause_all(conn)
    worker = await engine(breaker_cooldown=60)
    for _ in range(5):  # five health-check cycles and worker passes over several cool-downs
        await check_credentials(worker.pool, worker.client, worker.worker.ctx.breaker, clock)
        await _cycles(worker, clock, rounds=1, step_s=30)
    assert conn.execute("SELECT count(*) FROM alerts WHERE kind = 'auth_failure'").fetchone() == (
        1,
    )
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'pending' AND attempt_count = 0"
    ).fetchone() == (3,)
    audience = conn.execute("SELECT audience FROM alerts WHERE kind = 'auth_failure'").fetchone()
    assert audience == ("operators",)
    assert admin.fcm_messages() == []  # an organisation's admin is not the service's operator
    admin.clear_faults()
    result = await check_credentials(worker.pool, worker.client, worker.worker.ctx.breaker, clock)
    assert result["ok"] is True
    assert result["recovered"] is True
    await _cycles(worker, clock, rounds=3, step_s=1)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (3,)


async def test_a_400_for_one_contact_while_the_others_succeed(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """One contact answers 400: it alone is dead-lettered for investigation after one call."""
    pairs = _mentors(conn, admin, 4)
    bad_mentor, bad_contact = pairs[0]
    admin.set_faults([{"method": "PATCH", "contactid": str(bad_contact), "status": 400}])
    _pause_all(conn)
    worker = await engine()
    await _cycles(worker, clock, rounds=3, step_s=1)
    letters = conn.execute("SELECT mentor_id, failure_reason FROM dead_letter_queue").fetchall()
    assert [m for m, _ in letters] == [bad_mentor]
    assert letters[0][1].startswith("requires_investigation: HTTP 400")
    listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    assert listed == {str(c): c == bad_contact for _, c in pairs}


@pytest.mark.parametrize(
    ("body", "content_type", "attempts"),
    [
        # A page that is not the service's: we cannot tell if it applied, so send again.
        ("<html><body>Gateway says hi</body></html>", "text/html", 2),
        ("not json at all", "text/plain", 2),
        # JSON with a 2xx comes from the service itself: applied, even if the body is cut.
        ('{"truncated": ', "application/json", 1),
    ],
)
async def test_malformed_responses_are_classified_and_the_worker_stays_up(  # noqa: PLR0917
    conn: Conn,
    admin: AdminClient,
    engine: Any,
    clock: FakeClock,
    body: str,
    content_type: str,
    attempts: int,
) -> None:
    """A PATCH answered 200 with junk is classified, never a crash; the other mentor is unharmed."""
    _mentors(conn, admin, 2)
    admin.set_faults([{"method": "PATCH", "status": 200, "body": body,
                       "content_type": content_type, "times": 1}])  # fmt: skip
    _pause_all(conn)
    worker = await engine()
    await _cycles(worker, clock, rounds=6, step_s=1)
    rows = conn.execute("SELECT status, attempt_count FROM sync_queue ORDER BY id").fetchall()
    assert sorted(rows) == sorted([("succeeded", 1), ("succeeded", attempts)])


async def test_fcm_unregistered_removes_the_device_token(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """A push answered UNREGISTERED marks the delivery and deletes the device token."""
    _mentors(conn, admin, 1, token="stale-device")
    admin.unregister_tokens(["stale-device"])
    admin.set_faults([{"method": "PATCH", "kind": "dataverse", "status": 404}])
    _pause_all(conn)
    worker = await engine()
    await _cycles(worker, clock, rounds=3, step_s=1)
    assert conn.execute("SELECT status FROM alert_deliveries").fetchall() == [("unregistered",)]
    assert conn.execute(
        "SELECT count(*) FROM device_tokens WHERE token = 'stale-device'"
    ).fetchone() == (0,)


async def test_token_is_cached_across_many_calls(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Twenty PATCHes need one token request."""
    _mentors(conn, admin, 20)
    admin.clear_requests()
    admin.expire_tokens()
    _pause_all(conn)
    worker = await engine()
    await _cycles(worker, clock, rounds=2, step_s=1)
    tokens = admin.requests(kind="token")
    assert len(_patches(admin)) == 20
    assert len(tokens) == 1


async def test_outage_drill_one_probe_per_cooldown_no_dead_letter_then_full_drain(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Dynamics down for five cool-downs: it opens after 3 failures, sees at most one probe per
    cool-down, dead-letters nothing, and the whole backlog drains once Dynamics is back."""
    _mentors(conn, admin, 40)
    admin.set_faults([{"method": "PATCH", "kind": "dataverse", "status": 503}])
    _pause_all(conn)
    worker = await engine(worker_concurrency=4, breaker_cooldown=60, dynamics_batch_size=1)
    await worker.worker.run_once()
    opened_after = len(_patches(admin))
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    assert opened_after <= 4  # the calls already in flight when the third failure came back
    per_cooldown = []
    for _ in range(5):
        before = len(_patches(admin))
        await _cycles(worker, clock, rounds=12, step_s=5)  # one cool-down, in 5 s steps
        per_cooldown.append(len(_patches(admin)) - before)
    assert all(n <= 1 for n in per_cooldown), per_cooldown
    assert sum(per_cooldown) >= 4  # and the probes did happen
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    admin.clear_faults()
    await _cycles(worker, clock, rounds=15, step_s=5)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (40,)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert all(c["listed"] is False for c in admin.contacts())


def _batches(admin: AdminClient) -> list[Any]:
    return [r for r in admin.requests(kind="dataverse") if r["path"].endswith("/$batch")]


async def test_a_backlog_goes_out_in_batches_and_each_change_is_recorded_alone(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """250 changes, batches of at most 50 over 2 slots: a handful of `$batch` requests, one
    inner PATCH per change, one success and one attempt per operation; a contact Dynamics does
    not have (404) dead-letters alone while the rest of its batch succeeds."""
    pairs = _mentors(conn, admin, 250)
    admin.delete_contacts()
    admin.put_contacts([{"contactid": str(c), "listed": True} for _, c in pairs[1:]])
    _pause_all(conn)
    worker = await engine(worker_concurrency=2, dynamics_batch_size=50)
    await _cycles(worker, clock, rounds=3, step_s=1)
    batches = _batches(admin)
    assert 5 <= len(batches) <= 10
    inner = [r for r in admin.requests(kind="dataverse") if r["method"] == "PATCH"]
    assert len(inner) == 250
    assert all(r["in_batch"] for r in inner)
    rows = conn.execute(
        "SELECT status, attempt_count, count(*) FROM sync_queue GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    assert rows == [("dead_lettered", 1, 1), ("succeeded", 1, 249)]
    dead = conn.execute("SELECT failure_reason FROM dead_letter_queue").fetchall()
    assert len(dead) == 1
    assert dead[0][0].startswith("requires_investigation")
    listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    assert len(listed) == 249
    assert not any(listed.values())
    attempts = conn.execute(
        "SELECT count(*) FROM audit_log WHERE event_type = 'sync_succeeded'"
    ).fetchone()
    assert attempts == (249,)


async def test_batches_that_fail_whole_count_once_each_towards_the_breaker(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Dynamics down: each failed `$batch` is one failure, so the circuit opens after three
    batches, not after three of the changes inside one; nothing is dead-lettered, the backlog
    drains after recovery, and while open no batch is sent."""
    _mentors(conn, admin, 60)
    admin.set_faults([{"method": "POST", "kind": "dataverse", "status": 503}])
    _pause_all(conn)
    worker = await engine(worker_concurrency=1, dynamics_batch_size=20, breaker_cooldown=60)
    await _cycles(worker, clock, rounds=1, step_s=0.5)
    assert len(_batches(admin)) == 3
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("open",)
    await _cycles(worker, clock, rounds=50, step_s=1)
    assert len(_batches(admin)) == 3
    admin.clear_faults()
    await _cycles(worker, clock, rounds=40, step_s=1)
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("closed",)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (60,)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert not any(c["listed"] for c in admin.contacts())


async def test_a_throttled_batch_spends_nothing_and_pauses_every_call(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    _mentors(conn, admin, 30)
    admin.set_faults([{"method": "POST", "kind": "dataverse", "status": 429, "retry_after": 30,
                       "times": 1}])  # fmt: skip
    _pause_all(conn)
    worker = await engine(worker_concurrency=1, dynamics_batch_size=100)
    await _cycles(worker, clock, rounds=29, step_s=1)
    assert len(_batches(admin)) == 1
    await _cycles(worker, clock, rounds=3, step_s=1)
    assert len(_batches(admin)) == 2
    rows = conn.execute(
        "SELECT status, attempt_count, throttle_count, count(*) FROM sync_queue GROUP BY 1, 2, 3"
    ).fetchall()
    assert rows == [("succeeded", 1, 1, 30)]
    assert conn.execute("SELECT state, consecutive_failures FROM circuit_breakers").fetchone() == (
        "closed", 0,
    )  # fmt: skip
