"""Contract drift over real HTTPS: the sandbox renames the listing field, drops the entity set or
breaks the webhook while changes flow; nothing dead-letters, one alert, everything replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from hlfsync import services
from hlfsync.dataverse.client import DataverseClient
from hlfsync.dynamics.factory import build_tokens
from hlfsync.outbound.tls import tls_verify
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock, make_chapter, make_mentor, make_org, make_user
from hlfsync.worker.health import check_credentials
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]
RENAMED = "hlf_listed_v2"


@pytest.fixture
def clock() -> FakeClock:
    """A few seconds ahead of the database clock, so freshly queued rows are due."""
    return FakeClock(datetime.now(UTC) + timedelta(seconds=5))


def _settings(sandbox: SandboxServer, db_url: str, contract: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env(contract).items()
    }
    values.update(database_url=db_url, **extra)
    return Settings(**values)


@pytest.fixture
async def engine(sandbox: SandboxServer, db_url: str, clock: FakeClock) -> AsyncIterator[Any]:
    """A worker wired to the sandbox by the production factories."""
    built: list[services.WorkerServices] = []

    async def make(contract: str = "dataverse-v9", **extra: Any) -> services.WorkerServices:
        conf = _settings(sandbox, db_url, contract, **extra)
        worker = await services.build_worker(conf, clock=clock, client=extra.pop("client", None))
        built.append(worker)
        return worker

    yield make
    for worker in built:
        await worker.aclose()


def _world(conn: Conn, admin: AdminClient, count: int) -> list[tuple[UUID, UUID]]:
    """Active mentors in one chapter, a coordinator's and an administrator's device, contacts."""
    org = make_org(conn)
    chapter = make_chapter(conn, org)
    make_user(conn, org, coordinates=(chapter,), token="coordinator-device")
    make_user(conn, org, admin=True, token="admin-device")
    pairs = []
    for _ in range(count):
        mentor = make_mentor(conn, org, chapters=(chapter,))
        row = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
        contact = row.fetchone()
        assert contact is not None
        pairs.append((mentor, contact[0]))
    admin.put_contacts([{"contactid": str(c), "listed": True} for _, c in pairs])
    return pairs


def _set(conn: Conn, mentors: list[UUID], status: str) -> None:
    conn.execute("UPDATE peer_mentors SET status = %s WHERE id = ANY(%s)", [status, mentors])


async def _cycles(worker: Any, clock: FakeClock, *, rounds: int, step_s: float) -> None:
    for _ in range(rounds):
        await worker.worker.run_once()
        await worker.dispatcher.run_once()
        clock.advance(step_s)


def _alerts(conn: Conn) -> dict[str, int]:
    rows = conn.execute("SELECT kind, count(*) FROM alerts GROUP BY kind").fetchall()
    return dict(rows)


def _listing_matches_status(conn: Conn, admin: AdminClient) -> bool:
    wanted = {
        str(c): s == "active"
        for c, s in conn.execute("SELECT dynamics_contact_id, status FROM peer_mentors")
    }
    return {c["contactid"]: c["listed"] for c in admin.contacts()} == wanted


async def test_drill_rename_the_listing_field_mid_run_then_restore_it(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """Renamed field with changes flowing: 0 dead letters, exactly 1 administrator alert, every
    change held with no attempt spent; restored: everything replays, one "recovered" notice,
    and the listing equals the status for every mentor."""
    pairs = _world(conn, admin, 30)
    mentors = [m for m, _ in pairs]
    worker = await engine(breaker_cooldown=60)
    _set(conn, mentors[:10], "paused")
    await _cycles(worker, clock, rounds=2, step_s=1)
    assert _listing_matches_status(conn, admin)

    admin.set_faults(drift={"listing_field": RENAMED})
    for wave in (mentors[10:20], mentors[20:25]):  # changes keep flowing during the drift
        _set(conn, wave, "paused")
        await _cycles(worker, clock, rounds=3, step_s=5)
    _set(conn, mentors[:5], "active")
    await _cycles(worker, clock, rounds=30, step_s=10)  # five cool-downs of probes
    held = conn.execute(
        "SELECT count(*), max(attempt_count) FROM sync_queue WHERE status = 'pending'"
    ).fetchone()
    assert held == (20, 0)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert _alerts(conn) == {"contract_failure": 1}
    detail = conn.execute("SELECT details->>'detail' FROM alerts").fetchone()
    assert detail is not None
    assert "0x80048d19" in detail[0]
    assert f"'{'hlf_listedonwebsite'}' does not exist" in detail[0]
    breaker = conn.execute("SELECT state, hold_reason FROM circuit_breakers").fetchone()
    assert breaker is not None
    assert breaker[1] == "contract"
    # Coordinators are not buried in alerts, and the incident is the service's operators' (no
    # organisation's push): one notice for their channel, none to any device.
    assert {m["token"] for m in admin.fcm_messages()} == set()
    assert conn.execute(
        "SELECT kind, event FROM operator_notices ORDER BY id"
    ).fetchall() == [("contract_failure", "raised")]  # fmt: skip

    admin.clear_faults()
    await _cycles(worker, clock, rounds=10, step_s=10)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'in_progress')"
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert _alerts(conn) == {"contract_failure": 1, "hold_recovered": 1}
    assert conn.execute("SELECT kind, event FROM operator_notices ORDER BY id").fetchall() == [
        ("contract_failure", "raised"),
        ("contract_failure", "recovered"),
    ]
    assert conn.execute("SELECT state, hold_reason FROM circuit_breakers").fetchone() == (
        "closed", None,
    )  # fmt: skip
    assert _listing_matches_status(conn, admin)


async def test_health_check_proves_the_contract_and_raises_the_same_alert(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """The health check names each verdict; a dropped entity set fails `entity_set` and
    `listing_field` as contract, raises the one alert and holds; restored, it recovers."""
    _world(conn, admin, 2)
    worker = await engine()
    pool, client, breaker = worker.pool, worker.client, worker.worker.ctx.breaker
    healthy = await check_credentials(pool, client, breaker, clock)
    assert [(c["name"], c["verdict"]) for c in healthy["checks"]] == [
        ("token", "pass"), ("whoami", "pass"), ("entity_set", "pass"),
        ("listing_field", "pass"), ("writable", "pass"),
    ]  # fmt: skip
    admin.set_faults(drift={"entity_set": "hlf_people"})
    broken = await check_credentials(pool, client, breaker, clock)
    verdicts = {c["name"]: (c["verdict"], c["failure"]) for c in broken["checks"]}
    assert verdicts["whoami"] == ("pass", None)
    assert verdicts["entity_set"] == ("fail", "contract")
    assert verdicts["listing_field"] == ("fail", "contract")
    assert broken["contract"] is True
    assert broken["alerted"] is True
    again = await check_credentials(pool, client, breaker, clock)
    assert again["alerted"] is False  # one alert per incident
    assert conn.execute("SELECT hold_reason FROM circuit_breakers").fetchone() == ("contract",)
    admin.clear_faults()
    fixed = await check_credentials(pool, client, breaker, clock)
    assert fixed["ok"] is True
    assert fixed["recovered"] is True
    assert conn.execute("SELECT state FROM circuit_breakers").fetchone() == ("closed",)
    assert _alerts(conn) == {"contract_failure": 1, "hold_recovered": 1}
    assert conn.execute("SELECT kind, event FROM operator_notices ORDER BY id").fetchall() == [
        ("contract_failure", "raised"),
        ("contract_failure", "recovered"),
    ]


async def test_a_deleted_contact_still_dead_letters_alone(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """A genuine per-mentor 404 (the probe passes): that one operation dead-letters, the rest
    succeed, no contract alert."""
    pairs = _world(conn, admin, 5)
    admin.delete_contacts()
    admin.put_contacts([{"contactid": str(c), "listed": True} for _, c in pairs[1:]])
    _set(conn, [m for m, _ in pairs], "paused")
    worker = await engine()
    await _cycles(worker, clock, rounds=3, step_s=1)
    letters = conn.execute("SELECT mentor_id FROM dead_letter_queue").fetchall()
    assert letters == [(pairs[0][0],)]
    assert "contract_failure" not in _alerts(conn)


class DropPrefer(httpx.AsyncBaseTransport):
    """A proxy that strips `Prefer` from `$batch` requests: Dataverse then stops each batch at
    its first failure."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$batch"):
            del request.headers["Prefer"]
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_batch_stopped_at_its_first_failure_loses_and_buries_nothing(  # noqa: PLR0917 - fixtures
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock, sandbox: SandboxServer,
    db_url: str,
) -> None:  # fmt: skip
    """Without continue-on-error applied, a batch of 10 stopped at a deleted contact: the parts
    before it succeed, it alone dead-letters, the parts after it run again with no attempt
    spent, and the listing ends equal to the status."""
    pairs = _world(conn, admin, 10)
    admin.delete_contacts()
    admin.put_contacts([{"contactid": str(c), "listed": True} for i, (_, c) in enumerate(pairs)
                        if i != 3])  # fmt: skip
    conf = _settings(sandbox, db_url, "dataverse-v9")
    inner = httpx.AsyncHTTPTransport(verify=tls_verify(conf.dynamics_ca_bundle))
    client = DataverseClient(
        httpx.AsyncClient(transport=DropPrefer(inner), timeout=10.0), build_tokens(conf),
        conf.dynamics_url or "", listing_field=conf.dynamics_listing_field,
    )  # fmt: skip
    worker = await engine(client=client, worker_concurrency=1)
    _set(conn, [m for m, _ in pairs], "paused")
    await _cycles(worker, clock, rounds=4, step_s=1)
    batches = [r for r in admin.requests(kind="dataverse") if r["path"].endswith("$batch")]
    assert batches[0]["status"] == 404
    assert conn.execute("SELECT mentor_id FROM dead_letter_queue").fetchall() == [(pairs[3][0],)]
    rows = conn.execute(
        "SELECT status, max(attempt_count) FROM sync_queue GROUP BY status ORDER BY status"
    ).fetchall()
    assert rows == [("dead_lettered", 1), ("succeeded", 1)]
    listed = {c["contactid"]: c["listed"] for c in admin.contacts()}
    assert listed == {str(c): False for i, (_, c) in enumerate(pairs) if i != 3}


async def test_retry_after_on_503_sets_the_next_attempt(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """A 503 with Retry-After 20 retries no sooner than 20 s (the policy alone says 2 s)."""
    ((mentor, contact),) = _world(conn, admin, 1)
    admin.set_faults([{"method": "PATCH", "contactid": str(contact), "status": 503,
                       "retry_after": 20, "times": 1}])  # fmt: skip
    _set(conn, [mentor], "paused")
    worker = await engine()
    await worker.worker.run_once()
    delays = conn.execute(
        "SELECT (details->>'delay_s')::float8 FROM audit_log WHERE details ? 'delay_s'"
    ).fetchall()
    assert delays == [(20.0,)]


async def test_a_mentor_without_contact_id_is_addressed_by_alternate_key_and_linked(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """With an alternate key configured, a mentor without a contact id is PATCHed as
    contacts(hlf_mentornumber='…') and the contactid Dynamics answers is stored on it."""
    ((mentor, contact),) = _world(conn, admin, 1)
    conn.execute("UPDATE peer_mentors SET dynamics_contact_id = NULL, mentor_number = 'M-17'"
                 " WHERE id = %s", [mentor])  # fmt: skip
    admin.put_contacts([{"contactid": str(contact), "listed": True, "hlf_mentornumber": "M-17"}])
    _set(conn, [mentor], "paused")
    worker = await engine(dynamics_alternate_key="hlf_mentornumber",
                          dynamics_alternate_key_column="mentor_number")  # fmt: skip
    await _cycles(worker, clock, rounds=2, step_s=1)
    assert conn.execute("SELECT status FROM sync_queue").fetchone() == ("succeeded",)
    stored = conn.execute("SELECT dynamics_contact_id FROM peer_mentors WHERE id = %s", [mentor])
    assert stored.fetchone() == (contact,)
    patch = next(r for r in admin.requests(kind="dataverse") if r["method"] == "PATCH")
    assert "hlf_mentornumber=" in patch["path"]
    assert admin.contacts()[0]["listed"] is False


async def test_a_webhook_that_is_gone_holds_instead_of_dead_lettering(
    conn: Conn, admin: AdminClient, engine: Any, clock: FakeClock
) -> None:
    """webhook-v1 answered 410: a contract hold with one alert, no dead letter; restored, the
    held events are delivered."""
    pairs = _world(conn, admin, 3)
    admin.set_faults(drift={"webhook": "gone"})
    _set(conn, [m for m, _ in pairs], "paused")
    worker = await engine("webhook-v1")
    await _cycles(worker, clock, rounds=8, step_s=10)
    assert conn.execute("SELECT count(*) FROM dead_letter_queue").fetchone() == (0,)
    assert _alerts(conn) == {"contract_failure": 1}
    admin.clear_faults()
    await _cycles(worker, clock, rounds=10, step_s=10)
    assert conn.execute(
        "SELECT count(*) FROM sync_queue WHERE status = 'succeeded'"
    ).fetchone() == (3,)
    assert _alerts(conn) == {"contract_failure": 1, "hold_recovered": 1}
    assert conn.execute("SELECT kind, event FROM operator_notices ORDER BY id").fetchall() == [
        ("contract_failure", "raised"),
        ("contract_failure", "recovered"),
    ]
