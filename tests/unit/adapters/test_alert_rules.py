"""Issue 17's pure rules: token-endpoint answers, FCM answers, collapse keys, holds, notices."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from _adapter_fakes import Recorder

from hlfsync.core.errors import AuthFailure, Transient
from hlfsync.notify import fcm_wire, google_token, operators
from hlfsync.notify.base import DeliveryOutcome
from hlfsync.notify.fcm import FcmNotifier, GoogleAccessTokens, TokenAnswer
from hlfsync.worker import dispatcher
from hlfsync_sandbox import wire

pytestmark = pytest.mark.anyio

HTML_502 = wire.GOOGLE_502_PAGE


def _oauth(error: str, description: str = "") -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, HTML_502, Transient),
        (500, _oauth("internal_failure", "Backend Error"), Transient),
        (503, b"", Transient),
        (429, _oauth("rate_limit_exceeded"), Transient),
        (400, _oauth("temporarily_unavailable"), Transient),
        (400, _oauth("invalid_grant", "Invalid JWT Signature."), AuthFailure),
        (401, _oauth("invalid_client", "The OAuth client was not found."), AuthFailure),
        (400, _oauth("invalid_scope"), AuthFailure),
    ],
)
def test_token_endpoint_answers_are_classified(status: int, body: bytes, expected: type) -> None:
    """5xx, 429 and pages are retries; an OAuth refusal of the key is auth."""
    assert type(google_token.classify(status, body)) is expected


def test_no_reason_quotes_markup_or_runs_long() -> None:
    """A page is never quoted and a long description is one truncated line."""
    page = google_token.classify(502, HTML_502).summary()
    assert "<" not in page
    assert "html" not in page.lower()
    long = google_token.classify(400, _oauth("invalid_grant", "word\n" * 500)).summary()
    assert "\n" not in long
    assert len(long) < 250


@pytest.mark.parametrize("code", ["THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"])
def test_apns_auth_error_is_third_party_and_not_refreshed(code: str) -> None:
    """The older APNS_AUTH_ERROR name is the project's APNs key problem: no token refresh."""
    body = json.dumps(
        {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "x",
                   "details": [{"@type": fcm_wire.FCM_ERROR_TYPE, "errorCode": code}]}}
    ).encode()  # fmt: skip
    assert not fcm_wire.wants_token_refresh(401, body)
    assert fcm_wire.classify(401, httpx.Headers(), body).outcome is DeliveryOutcome.REJECTED


def test_a_token_fcm_calls_invalid_is_retired() -> None:
    """INVALID_ARGUMENT about message.token (or FCM's own wording) retires the device token."""
    field = wire.google_error(400, "bad token", fcm_code="INVALID_ARGUMENT", field="message.token")
    worded = wire.google_error(
        400, "The registration token is not a valid FCM registration token",
        fcm_code="INVALID_ARGUMENT",
    )  # fmt: skip
    other = wire.google_error(400, "Message too big", fcm_code="INVALID_ARGUMENT")
    for reply in (field, worded):
        outcome = fcm_wire.classify(400, httpx.Headers(), reply.body).outcome
        assert outcome is DeliveryOutcome.UNREGISTERED
    assert fcm_wire.classify(400, httpx.Headers(), other.body).outcome is DeliveryOutcome.REJECTED


def test_collapse_key_goes_where_fcm_allows_it() -> None:
    """The incident key goes to android.collapse_key and apns-collapse-id; data may use it too."""
    body = json.loads(fcm_wire.message_body("t", {"type": "x"}, collapse_key="k" * 80))
    message = body["message"]
    assert message["android"] == {"collapse_key": "k" * 64}
    assert message["apns"] == {"headers": {"apns-collapse-id": "k" * 64}}
    assert "android" not in json.loads(fcm_wire.message_body("t", {}))["message"]
    assert fcm_wire.data_problem({"collapse_key": "x"}) is None


def test_collapse_key_is_stable_per_incident_and_opaque() -> None:
    """One key per (kind, incident), short, revealing neither."""
    key = dispatcher.collapse_key("sync_failure", "mentor-123:remove")
    assert key == dispatcher.collapse_key("sync_failure", "mentor-123:remove")
    assert key != dispatcher.collapse_key("sync_failure", "mentor-124:remove")
    assert len(key) == 32
    assert "mentor" not in key


def test_hold_backoff_grows_to_five_minutes_and_honours_a_hint() -> None:
    """Holds go 5, 10, 20 s ... up to 300 s; a Retry-After is a floor."""
    waits = [dispatcher.hold_backoff(n, None).total_seconds() for n in range(1, 10)]
    assert waits[:3] == [5.0, 10.0, 20.0]
    assert max(waits) == 300.0
    assert waits == sorted(waits)
    assert dispatcher.hold_backoff(1, 42.0) == timedelta(seconds=42)
    assert dispatcher.operator_backoff(20) == timedelta(seconds=900)


def test_notice_text_is_one_line_naming_the_incident() -> None:
    """Raised and recovered notices say what, which incident and why, on one line."""
    raised = operators.Notice(
        "auth_failure", "fcm:2", "raised", {"check": "fcm", "detail": "invalid_grant\n: x"}
    )
    text = operators.notice_text(raised)
    assert text.startswith("hlfsync ALERT: push (FCM) credentials refused (incident fcm:2)")
    assert "\n" not in text
    assert "invalid_grant" in text
    recovered = operators.notice_text(operators.Notice("contract_drift", "v9:1", "recovered", {}))
    assert recovered == "hlfsync RECOVERED: contract drift (incident v9:1)"
    assert operators.webhook_body(text) == {"text": text}


class FailingCredentials:
    """google-auth credentials whose refresh fails after a short wait, counting calls."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.refreshes = 0
        self.token: str | None = None
        self.expiry = None

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        raise self.error


class _Session:
    def close(self) -> None:
        pass


async def test_concurrent_callers_share_one_failed_fetch() -> None:
    """Fifty deliveries waiting for a token make one request and all get its failure."""
    credentials = FailingCredentials(TokenAnswer(502, HTML_502))
    tokens = GoogleAccessTokens(
        "sa.json", credentials_factory=lambda: credentials, session_factory=_Session
    )
    results = await asyncio.gather(*(tokens.token() for _ in range(50)), return_exceptions=True)
    assert credentials.refreshes == 1
    assert all(isinstance(r, Transient) for r in results)
    assert all("<" not in r.summary() for r in results if isinstance(r, Transient))


async def test_a_refused_fetch_pauses_nothing_is_sent() -> None:
    """A 502 page from the token endpoint is `paused` (held, no attempt) and no push is sent."""
    credentials = FailingCredentials(TokenAnswer(502, HTML_502))
    tokens = GoogleAccessTokens(
        "sa.json", credentials_factory=lambda: credentials, session_factory=_Session
    )
    recorder = Recorder(httpx.Response(200, json={"name": "n"}))
    http = httpx.AsyncClient(transport=recorder.transport())
    notifier = FcmNotifier(http, "p", "sa.json", "https://fcm.example", tokens=tokens)
    result = await notifier.send("device", {"type": "x"})
    assert result.outcome is DeliveryOutcome.PAUSED
    assert result.holds_channel
    assert recorder.requests == []
    await http.aclose()


def test_no_quiet_retry_stops_at_the_first_failed_answer() -> None:
    """The transport wrapper hands the first non-200 answer back instead of letting google-auth
    sleep and retry."""
    from hlfsync.notify.fcm import _NoQuietRetry

    calls: list[Any] = []

    class Answer:
        status = 503
        data = b'{"error":"internal_failure"}'

    def inner(**kwargs: Any) -> Answer:
        calls.append(kwargs)
        return Answer()

    with pytest.raises(TokenAnswer) as caught:
        _NoQuietRetry(inner)(url="u", method="POST")
    assert caught.value.status == 503
    assert len(calls) == 1


def test_the_push_credentials_alert_has_its_own_type() -> None:
    """The app can tell refused push credentials from refused Dynamics credentials."""
    from hlfsync.notify import payloads

    assert payloads.build_auth_alert_data("fcm") == {"type": "hlf_push_auth_failure"}
    assert payloads.build_auth_alert_data("webhook-v1")["type"] == "hlf_sync_auth_failure"


async def test_the_webhook_channel_reports_failures_without_its_url() -> None:
    """A 500 or a refused connection is a one-line reason naming neither the URL nor its key."""
    url = "https://hooks.example/services/T0/B0/SECRETKEY"
    answers = iter([httpx.Response(500), httpx.Response(200, text="ok")])

    def answer(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"text": "hello"}
        return next(answers)

    channel = operators.WebhookChannel(
        url, httpx.AsyncClient(transport=httpx.MockTransport(answer))
    )
    assert await channel.send("hello") == "webhook answered HTTP 500"
    assert await channel.send("hello") is None
    await channel.aclose()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url}", request=request)

    broken = operators.WebhookChannel(url, httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    reason = await broken.send("hello")
    assert reason == "webhook unreachable (ConnectError)"
    assert "SECRETKEY" not in repr(broken)
    await broken.aclose()


async def test_the_smtp_channel_reports_an_unreachable_server_in_one_line() -> None:
    """Nothing listening: a one-line reason, no exception."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = operators.SmtpChannel(
        "127.0.0.1", port, sender="a@example.org", recipients=["b@example.org"],
        security="none", timeout_s=2.0,
    )  # fmt: skip
    assert await channel.send("hello") == "SMTP failed (ConnectionRefusedError)"


def test_operator_settings_fail_with_one_line_naming_the_variable() -> None:
    """A webhook that is not a URL, or SMTP without recipients, is refused naming the setting
    and never echoing the value."""
    from pydantic import ValidationError

    from hlfsync.settings import Settings, describe_error

    with pytest.raises(ValidationError) as bad_url:
        Settings(operator_webhook_url="ftp://hooks.example/KEY")
    line = describe_error(bad_url.value)
    assert line.startswith("invalid setting HLFSYNC_OPERATOR_WEBHOOK_URL: not an http(s) URL")
    assert "KEY" not in line
    with pytest.raises(ValidationError) as no_to:
        Settings(operator_smtp_host="smtp.example.org")
    assert "HLFSYNC_OPERATOR_SMTP_TO" in describe_error(no_to.value)
    with pytest.raises(ValidationError) as bad_to:
        Settings(operator_smtp_host="h", operator_smtp_from="a@x", operator_smtp_to="nobody")
    assert "HLFSYNC_OPERATOR_SMTP_TO" in describe_error(bad_to.value)
