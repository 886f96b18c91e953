"""Push-credential outages and the operators' channel, over the sandbox and real PostgreSQL.

Time is a FakeClock; every HTTP call (google-auth, FCM, the webhook, SMTP) is real.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import psycopg
import pytest
from bench.alerts import drill
from psycopg.types.json import Jsonb

from hlfsync import services
from hlfsync.db.queries import q
from hlfsync.notify import operators
from hlfsync.notify.base import DeliveryOutcome
from hlfsync.notify.factory import build_notifier
from hlfsync.settings import Settings
from hlfsync.testing import FakeClock, make_chapter, make_mentor, make_org, make_user
from hlfsync.worker import push_health
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.receiver import WebhookReceiver
from hlfsync_sandbox.server import SandboxServer

Conn = psycopg.Connection[Any]
DEVICE = "coordinator-1:APA91bDEVICE"


@pytest.fixture
def clock() -> FakeClock:
    """A second ahead of the database clock, so fresh rows are due."""
    return FakeClock(datetime.now(UTC) + timedelta(seconds=1))


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    """A local incoming webhook that takes what Slack and Teams take."""
    with WebhookReceiver() as receiver:
        yield receiver


def _settings(sandbox: SandboxServer, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        k.removeprefix("HLFSYNC_").lower(): v for k, v in sandbox.env().items()
    }
    values.update(database_url=db_url, **extra)
    return Settings(**values)


@pytest.fixture
async def worker(
    sandbox: SandboxServer, db_url: str, clock: FakeClock, hook: WebhookReceiver
) -> AsyncIterator[services.WorkerServices]:
    """A worker built by the production factories, telling operators through `hook`."""
    settings = _settings(sandbox, db_url, operator_webhook_url=hook.url)
    built = await services.build_worker(settings, clock=clock)
    yield built
    await built.aclose()


def _alert(conn: Conn, clock: FakeClock, *, token: str = DEVICE) -> Any:
    """One mentor alert for one coordinator device, raised as the sync engine raises it."""
    org = make_org(conn)
    chapter = make_chapter(conn, org)
    make_user(conn, org, coordinates=(chapter,), token=token)
    mentor = make_mentor(conn, org, chapters=(chapter,))
    payload = {"type": "hlf_sync_failure", "mentor_id": str(mentor), "operation": "remove"}
    row = conn.execute(
        q("raise_mentor_alert"),
        {"kind": "sync_failure", "key": f"{mentor}:1", "mentor": mentor,
         "payload": Jsonb(payload), "details": Jsonb({}), "now": clock.now()},
    ).fetchone()  # fmt: skip
    assert row is not None
    return row[0]


def _google_token_requests(admin: AdminClient) -> int:
    return sum(1 for r in admin.requests(kind="token") if r["path"] == "/token")


async def _runs(
    worker: services.WorkerServices, clock: FakeClock, *, n: int, step_s: float
) -> None:
    for _ in range(n):
        await worker.dispatcher.run_once()
        clock.advance(step_s)


async def test_refused_push_credentials_hold_deliveries_and_tell_operators_once(
    conn: Conn, admin: AdminClient, worker: Any, clock: FakeClock, hook: WebhookReceiver
) -> None:
    """invalid_grant for an hour: the delivery stays pending with no attempt spent, one operator
    notice goes out; when the key works again the push goes out once and operators hear so."""
    _alert(conn, clock)
    admin.set_faults(fcm_auth="reject")
    await _runs(worker, clock, n=720, step_s=5)  # an hour, in 5 s steps
    status, attempts = conn.execute(
        "SELECT status, attempt_count FROM alert_deliveries"
    ).fetchone()  # fmt: skip
    assert (status, attempts) == ("pending", 0)
    assert conn.execute(
        "SELECT kind, incident_key FROM alerts WHERE mentor_id IS NULL"
    ).fetchall() == [("auth_failure", "fcm:1")]  # fmt: skip
    assert len(hook.texts) == 1
    assert hook.texts[0].startswith("hlfsync ALERT: push (FCM) credentials refused")
    assert admin.fcm_messages() == []
    assert _google_token_requests(admin) <= 20  # probes back off to one per 5 minutes
    admin.clear_faults()
    await _runs(worker, clock, n=70, step_s=5)
    assert conn.execute("SELECT status FROM alert_deliveries").fetchall() == [("delivered",)]
    assert [m["token"] for m in admin.fcm_messages()] == [DEVICE]
    assert hook.texts[1].startswith("hlfsync RECOVERED: push (FCM) credentials refused")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_from_the_token_endpoint_is_one_request_and_no_markup(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, status: int
) -> None:
    """Fifty sends meeting a 5xx (JSON or a page) share one token request, return at once
    (google-auth's own sleeps between retries are cut), hold, and quote no HTML."""
    admin.set_faults([{"kind": "token", "path": "/token", "status": status}])
    notifier = build_notifier(_settings(sandbox, db_url))
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(notifier.send(DEVICE, {"k": "v"}) for _ in range(50)))
    finally:
        await notifier.aclose()  # type: ignore[attr-defined]
    assert time.perf_counter() - started < 3.0  # google-auth's own retry sleeps would be >1 s
    assert {r.outcome for r in results} == {DeliveryOutcome.PAUSED}
    assert not [r for r in results if "<" in (r.reason or "")]
    assert _google_token_requests(admin) == 1


async def test_a_token_fcm_calls_invalid_is_retired_with_an_audit_row(
    conn: Conn, admin: AdminClient, worker: Any, clock: FakeClock
) -> None:
    """A device token FCM refuses as invalid is deleted and the retirement audited."""
    _alert(conn, clock, token="not a valid token")
    await worker.dispatcher.run_once()
    assert conn.execute("SELECT status FROM alert_deliveries").fetchall() == [("unregistered",)]
    assert conn.execute("SELECT count(*) FROM device_tokens").fetchone() == (0,)
    (details,) = conn.execute(
        "SELECT details FROM audit_log WHERE event_type = 'device_token_retired'"
    ).fetchone()  # fmt: skip
    assert "not a valid token" not in str(details)
    assert "message.token" in details["reason"] or "registration token" in details["reason"]


async def test_each_push_carries_its_incidents_collapse_key(
    conn: Conn, admin: AdminClient, worker: Any
) -> None:
    """The push sent to FCM has android.collapse_key and apns-collapse-id for its incident."""
    _alert(conn, worker.dispatcher.clock)
    await worker.dispatcher.run_once()
    (message,) = admin.fcm_messages()
    body = message["message"]
    key = body["android"]["collapse_key"]
    assert body["apns"]["headers"]["apns-collapse-id"] == key
    assert len(key) == 32


async def test_an_operator_notice_is_retried_until_the_webhook_takes_it(
    conn: Conn, worker: Any, clock: FakeClock, hook: WebhookReceiver
) -> None:
    """A webhook answering 500 twice: the notice stays, is retried with backoff, sent once."""
    hook.fail_next(2)
    conn.execute(
        q("raise_admin_alert"),
        {"kind": "breaker_open", "key": "dynamics:7", "payload": Jsonb({"type": "x"}),
         "details": Jsonb({}), "now": clock.now()},
    )  # fmt: skip
    await worker.dispatcher.run_once()
    assert conn.execute(
        "SELECT status, attempt_count, last_error FROM operator_notices"
    ).fetchone() == ("pending", 1, "webhook: webhook answered HTTP 500")  # fmt: skip
    await worker.dispatcher.run_once()  # not due yet: no second post
    assert hook.posts == 1
    await _runs(worker, clock, n=10, step_s=10)
    assert hook.posts == 3
    assert hook.texts == [
        "hlfsync ALERT: circuit breaker open: calls to Dynamics paused (incident dynamics:7)"
    ]
    assert conn.execute("SELECT status FROM operator_notices").fetchone() == ("delivered",)


async def test_operator_notices_by_email_reach_a_local_smtp_server(
    conn: Conn, sandbox: SandboxServer, db_url: str, clock: FakeClock
) -> None:
    """With HLFSYNC_OPERATOR_SMTP_* set, an operator alert arrives as one e-mail to each."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler

    received: list[Message] = []

    class Keep(MessageHandler):
        def handle_message(self, message: Message) -> None:
            received.append(message)

    with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = _settings(
            sandbox, db_url, operator_smtp_host="127.0.0.1",
            operator_smtp_port=port,
            operator_smtp_security="none", operator_smtp_from="hlfsync@example.org",
            operator_smtp_to="ops@example.org, oncall@example.org",
        )  # fmt: skip
        built = await services.build_worker(settings, clock=clock)
        try:
            conn.execute(
                q("raise_admin_alert"),
                {"kind": "compensation", "key": "findings:1", "payload": Jsonb({"t": "x"}),
                 "details": Jsonb({"detail": "2 duplicates"}), "now": clock.now()},
            )  # fmt: skip
            await built.dispatcher.run_once()
        finally:
            await built.aclose()
    finally:
        controller.stop()
    (mail,) = received
    assert mail["To"] == "ops@example.org, oncall@example.org"
    assert mail["Subject"].startswith("hlfsync ALERT: compensation check found duplicates")
    assert "2 duplicates" in mail.get_payload(decode=True).decode()


async def test_push_health_records_refusal_and_recovery(
    conn: Conn, admin: AdminClient, worker: Any, clock: FakeClock
) -> None:
    """The health check's push part: failing with one alert while refused, then ok, recovered."""
    admin.set_faults(fcm_auth="reject")
    for _ in range(3):
        verdict = await push_health.check_push_credentials(worker.pool, worker.notifier, clock)
        assert verdict.failing
    assert "invalid_grant" in verdict.detail
    assert conn.execute("SELECT count(*) FROM alerts WHERE kind = 'auth_failure'").fetchone() == (
        1,
    )
    admin.clear_faults()
    verdict = await push_health.check_push_credentials(worker.pool, worker.notifier, clock)
    assert verdict.status == "ok"
    assert conn.execute("SELECT ok FROM credential_health WHERE name = 'fcm'").fetchone() == (True,)
    assert conn.execute(
        "SELECT event FROM operator_notices ORDER BY id"
    ).fetchall() == [("raised",), ("recovered",)]  # fmt: skip


def test_without_a_channel_status_and_health_say_operators_would_not_be_told() -> None:
    """Neither webhook nor SMTP configured: the verdict says so; with one, it names it."""
    assert operators.channel_problem(Settings()) == operators.NOT_CONFIGURED
    verdict = push_health.check_operator_channel(Settings())
    assert verdict.status == "off"
    assert "operators would not be told" in verdict.detail
    configured = Settings(operator_webhook_url="https://hooks.example/services/x")
    assert push_health.check_operator_channel(configured).detail == "operators' channel: webhook"
    assert "services/x" not in repr(configured)


async def test_drill_a_push_key_revoked_longer_than_every_retry_schedule(
    sandbox: SandboxServer, admin: AdminClient, db_url: str, hook: WebhookReceiver
) -> None:
    """Key revoked for 30 minutes while syncs fail: 0 alerts lost, one operator notice, every
    coordinator push delivered once after the key is back."""
    report = await drill(db_url, sandbox.env(), admin, hook, mentors=9, coordinators=2,
                         outage_s=1800.0)  # fmt: skip
    assert report.alerts_lost == 0
    assert report.alerts_during_outage == 9 + 1  # nine sync failures, the credentials alert
    assert report.pushes_delivered_after == report.pushes_expected == 18
    assert report.duplicate_pushes == 0
    assert report.out_of_order_pushes == 0
    assert report.operator_alert_notices == 1
    assert report.operator_recovered_notices == 1
    assert report.attempts_spent_during_outage == 0
    assert report.token_requests_during_outage <= 20
