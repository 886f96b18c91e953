"""FCM HTTP v1: the send call, the error table, the OAuth token cache, payloads and LogNotifier."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import structlog
from _adapter_fakes import Recorder

from hlfsync.core.errors import AuthFailure, Transient
from hlfsync.notify import fcm_wire, payloads
from hlfsync.notify.base import DeliveryOutcome, DeliveryResult, Notifier
from hlfsync.notify.fcm import FcmNotifier, GoogleAccessTokens
from hlfsync.notify.log import LogNotifier, fingerprint

pytestmark = pytest.mark.anyio

ENDPOINT = "https://fcm.example"
SEND_URL = f"{ENDPOINT}/v1/projects/hlf-app/messages:send"
DEVICE = "device-token-ABCDEF-123456"
ACCESS = "ya29.ACCESS-TOKEN-VALUE"
MENTOR = UUID("0f0e0d0c-0b0a-4000-8000-000000000001")
DATA = payloads.build_alert_data(MENTOR, "remove")


class FakeGoogleTokens(GoogleAccessTokens):
    """GoogleAccessTokens whose refresh is a counter, not a network call."""

    def __init__(self, failure: Exception | None = None) -> None:
        super().__init__("unused.json")
        self.failure = failure
        self.invalidations = 0

    async def token(self) -> str:
        if self.failure is not None:
            raise self.failure
        if not self._token:
            self.fetches += 1
            self._token = f"{ACCESS}-{self.fetches}"
        return self._token

    def invalidate(self, stale: str | None = None) -> None:
        self.invalidations += 1
        super().invalidate(stale)


def fcm_error(
    status: int, google_status: str, code: str | None = None, **headers: str
) -> httpx.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": f"{google_status} happened",
        "status": google_status,
    }
    if code is not None:
        error["details"] = [{"@type": fcm_wire.FCM_ERROR_TYPE, "errorCode": code}]
    return httpx.Response(status, json={"error": error}, headers=headers)


def notifier(recorder: Recorder, tokens: GoogleAccessTokens | None = None) -> FcmNotifier:
    http = httpx.AsyncClient(transport=recorder.transport())
    return FcmNotifier(
        http, "hlf-app", "unused.json", ENDPOINT, tokens=tokens or FakeGoogleTokens()
    )


async def test_send_posts_a_data_only_message() -> None:
    """The body is {"message": {"token", "data"}} with string values, sent with a bearer token."""
    recorder = Recorder(httpx.Response(200, json={"name": "projects/hlf-app/messages/0:1"}))
    result = await notifier(recorder).send(DEVICE, DATA)
    assert result == DeliveryResult.delivered("projects/hlf-app/messages/0:1")
    (request,) = recorder.requests
    assert str(request.url) == SEND_URL
    assert request.headers["Authorization"] == f"Bearer {ACCESS}-1"
    assert json.loads(request.content) == {
        "message": {
            "token": DEVICE,
            "data": {"type": "hlf_sync_failure", "mentor_id": str(MENTOR), "operation": "remove"},
        }
    }


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"type": "x", "attempts": 3}, "string"),
        ({"type": None}, "string"),
        ({"from": "x"}, "reserved"),
        ({"google.c.a": "x"}, "reserved"),
        ({"gcm.n": "x"}, "reserved"),
    ],
)
async def test_non_string_or_reserved_data_is_refused_before_sending(
    data: dict[str, Any], why: str
) -> None:
    """Data FCM would refuse is rejected locally, and nothing is sent."""
    recorder = Recorder(httpx.Response(200, json={"name": "n"}))
    result = await notifier(recorder).send(DEVICE, data)
    assert result.outcome is DeliveryOutcome.REJECTED
    assert why in (result.reason or "")
    assert recorder.requests == []


async def test_an_empty_device_token_is_refused() -> None:
    """No device token, no request."""
    recorder = Recorder(httpx.Response(200, json={"name": "n"}))
    assert (await notifier(recorder).send("", DATA)).outcome is DeliveryOutcome.REJECTED
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("response", "outcome", "retry_after_s"),
    [
        (fcm_error(404, "NOT_FOUND", "UNREGISTERED"), DeliveryOutcome.UNREGISTERED, None),
        (
            fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", **{"Retry-After": "30"}),
            DeliveryOutcome.RETRY,
            30.0,
        ),
        (fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), DeliveryOutcome.RETRY, None),
        (fcm_error(500, "INTERNAL", "INTERNAL"), DeliveryOutcome.RETRY, None),
        (fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), DeliveryOutcome.RETRY, 60.0),
        (
            fcm_error(429, "RESOURCE_EXHAUSTED", None, **{"Retry-After": "5"}),
            DeliveryOutcome.RETRY,
            5.0,
        ),
        (fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), DeliveryOutcome.REJECTED, None),
        (fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), DeliveryOutcome.REJECTED, None),
        (
            fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
            DeliveryOutcome.REJECTED,
            None,
        ),
        (fcm_error(403, "PERMISSION_DENIED"), DeliveryOutcome.AUTH, None),
        (fcm_error(404, "NOT_FOUND"), DeliveryOutcome.REJECTED, None),
        (httpx.Response(502, text="<html>bad gateway</html>"), DeliveryOutcome.RETRY, None),
        (httpx.Response(200, text="<html>proxy</html>"), DeliveryOutcome.RETRY, None),
        (httpx.Response(200, json={"nome": "x"}), DeliveryOutcome.RETRY, None),
        (httpx.Response(418, text="teapot"), DeliveryOutcome.REJECTED, None),
    ],
)
async def test_fcm_answers_map_to_outcomes(
    response: httpx.Response, outcome: DeliveryOutcome, retry_after_s: float | None
) -> None:
    """Each FCM answer of the table gives its outcome, with Retry-After where it applies."""
    result = await notifier(Recorder(response)).send(DEVICE, DATA)
    assert result.outcome is outcome
    assert result.retry_after_s == retry_after_s
    assert result.status == response.status_code


def test_parse_error_reads_status_code_and_message() -> None:
    """error.status, the FcmError errorCode and the message are read from an FCM v1 body."""
    body = fcm_error(404, "NOT_FOUND", "UNREGISTERED").content
    assert fcm_wire.parse_error(body) == ("NOT_FOUND", "UNREGISTERED", "NOT_FOUND happened")
    assert fcm_wire.parse_error(b"<html>") == (None, None, None)
    assert fcm_wire.parse_error(b'{"error": "flat"}') == (None, None, None)
    other = b'{"error": {"status": "X", "details": [{"@type": "other", "errorCode": "Y"}]}}'
    assert fcm_wire.parse_error(other) == ("X", None, None)


async def test_a_401_refreshes_the_token_once_and_resends() -> None:
    """An UNAUTHENTICATED 401 drops the access token and sends once more with a new one."""
    recorder = Recorder(fcm_error(401, "UNAUTHENTICATED"), httpx.Response(200, json={"name": "n"}))
    tokens = FakeGoogleTokens()
    result = await notifier(recorder, tokens).send(DEVICE, DATA)
    assert result.outcome is DeliveryOutcome.DELIVERED
    assert tokens.invalidations == 1
    assert [r.headers["Authorization"] for r in recorder.requests] == [
        f"Bearer {ACCESS}-1",
        f"Bearer {ACCESS}-2",
    ]


async def test_a_second_401_is_auth() -> None:
    """Two 401s in a row mean our credentials are broken: auth, after exactly two sends."""
    recorder = Recorder(fcm_error(401, "UNAUTHENTICATED"))
    result = await notifier(recorder).send(DEVICE, DATA)
    assert result.outcome is DeliveryOutcome.AUTH
    assert len(recorder.requests) == 2


async def test_third_party_auth_error_is_not_retried_with_a_new_token() -> None:
    """THIRD_PARTY_AUTH_ERROR is about the project's APNs keys: no token refresh, no resend."""
    recorder = Recorder(fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"))
    assert (await notifier(recorder).send(DEVICE, DATA)).outcome is DeliveryOutcome.REJECTED
    assert len(recorder.requests) == 1


async def test_network_failure_is_retry() -> None:
    """A connection failure or timeout is a retry, never an exception."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    result = await notifier(Recorder(refuse)).send(DEVICE, DATA)
    assert result.outcome is DeliveryOutcome.RETRY


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [(AuthFailure("bad key"), DeliveryOutcome.AUTH), (Transient("down"), DeliveryOutcome.PAUSED)],
)
async def test_token_failures_become_outcomes(failure: Exception, outcome: DeliveryOutcome) -> None:
    """A refused token request is auth; an unreachable token endpoint pauses; nothing is sent."""
    recorder = Recorder(httpx.Response(200, json={"name": "n"}))
    result = await notifier(recorder, FakeGoogleTokens(failure)).send(DEVICE, DATA)
    assert result.outcome is outcome
    assert recorder.requests == []


async def test_no_access_or_device_token_in_results_or_logs() -> None:
    """Results and log events carry a device fingerprint, never a token."""
    answers = [
        fcm_error(401, "UNAUTHENTICATED"),
        fcm_error(500, "INTERNAL"),
        httpx.Response(200, json={"name": "n"}),
    ]
    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for answer in answers:
            texts.append(repr(await notifier(Recorder(answer)).send(DEVICE, DATA)))
    texts += [repr(e) for e in logs]
    assert not [t for t in texts if ACCESS in t or DEVICE in t]
    assert any(e.get("device") == fingerprint(DEVICE) for e in logs)


class FakeCredentials:
    """A google-auth credentials stand-in whose refresh hands out numbered tokens."""

    def __init__(
        self, lifetime: timedelta = timedelta(hours=1), error: Exception | None = None
    ) -> None:
        self.lifetime = lifetime
        self.error = error
        self.refreshes = 0
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        if self.error is not None:
            raise self.error
        self.token = f"{ACCESS}-{self.refreshes}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + self.lifetime


class FakeSession:
    verify: object = None

    def close(self) -> None:
        pass


def google_tokens(credentials: Any) -> GoogleAccessTokens:
    return GoogleAccessTokens(
        "sa.json", credentials_factory=lambda: credentials, session_factory=FakeSession
    )


async def test_access_token_is_cached_and_shared() -> None:
    """Many concurrent and later callers share one refresh while the token is fresh."""
    credentials = FakeCredentials()
    tokens = google_tokens(credentials)
    results = await asyncio.gather(*(tokens.token() for _ in range(20)))
    results += [await tokens.token() for _ in range(20)]
    assert set(results) == {f"{ACCESS}-1"}
    assert credentials.refreshes == 1


async def test_invalidate_forces_a_refresh() -> None:
    """After invalidate(), the next call refreshes the credentials."""
    credentials = FakeCredentials()
    tokens = google_tokens(credentials)
    first = await tokens.token()
    tokens.invalidate(first)
    assert await tokens.token() == f"{ACCESS}-2"


async def test_refresh_errors_are_classified() -> None:
    """A non-retryable RefreshError is AuthFailure; retryable or TransportError is Transient."""
    from google.auth import exceptions

    refused = exceptions.RefreshError("invalid_grant: Invalid JWT Signature.", {"error": "x"})
    busy = exceptions.RefreshError("server_error: busy", retryable=True)
    down = exceptions.TransportError("connection refused")
    with pytest.raises(AuthFailure, match="invalid_grant"):
        await google_tokens(FakeCredentials(error=refused)).token()
    with pytest.raises(Transient):
        await google_tokens(FakeCredentials(error=busy)).token()
    with pytest.raises(Transient):
        await google_tokens(FakeCredentials(error=down)).token()


async def test_an_unreadable_credentials_file_is_auth(tmp_path: Path) -> None:
    """A missing or broken key file is AuthFailure naming only the error type."""
    with pytest.raises(AuthFailure, match="FileNotFoundError"):
        await GoogleAccessTokens(tmp_path / "missing.json").token()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(AuthFailure):
        await GoogleAccessTokens(broken).token()


def test_alert_payload_is_exactly_three_strings() -> None:
    """build_alert_data returns exactly type, mentor_id and operation, all strings."""
    assert payloads.build_alert_data(str(MENTOR), "restore") == {
        "type": "hlf_sync_failure",
        "mentor_id": str(MENTOR),
        "operation": "restore",
    }
    with pytest.raises(ValueError, match="operation"):
        payloads.build_alert_data(MENTOR, "delete")
    with pytest.raises(ValueError):
        payloads.build_alert_data("Ola Nordmann", "remove")


def test_other_payloads_are_minimal_strings() -> None:
    """Reminder and admin alerts carry only ids and codes, and FCM would accept them as data."""
    reminder = payloads.build_reminder_data(MENTOR, 14)
    assert reminder == {
        "type": "hlf_cert_expiry_reminder",
        "mentor_id": str(MENTOR),
        "threshold_days": "14",
    }
    admin = payloads.build_auth_alert_data("dataverse-v9")
    assert admin == {"type": "hlf_sync_auth_failure", "contract": "dataverse-v9"}
    for data in (DATA, reminder, admin):
        assert fcm_wire.data_problem(data) is None
    with pytest.raises(ValueError):
        payloads.build_reminder_data(MENTOR, -1)


async def test_log_notifier_stores_only_and_logs_no_device_token() -> None:
    """Without FCM the alert is logged by kind and mentor, with the device as a fingerprint."""
    log_notifier: Notifier = LogNotifier()
    with structlog.testing.capture_logs() as logs:
        result = await log_notifier.send(DEVICE, DATA)
    assert result.outcome is DeliveryOutcome.STORED
    assert result.final
    (event,) = logs
    assert event["kind"] == "hlf_sync_failure"
    assert event["mentor_id"] == str(MENTOR)
    assert DEVICE not in repr(event)


def test_delivery_result_finality() -> None:
    """Only retry and auth leave a delivery open."""
    assert not DeliveryResult.retry("x").final
    assert not DeliveryResult.auth("x").final
    assert DeliveryResult.rejected("x").final
    assert DeliveryResult.unregistered("x").final
    assert DeliveryResult.delivered("n").final


async def test_a_delivered_push_is_logged_at_debug_and_a_refused_one_at_info() -> None:
    """The dispatcher's `alert_delivered` is a delivered push's line; `fcm.send` adds one only
    when something is worth reading (a night's 100,000 pushes were two lines each)."""
    answers = [
        httpx.Response(200, json={"name": "projects/p/messages/1"}),
        fcm_error(404, "NOT_FOUND", "UNREGISTERED"),
    ]
    with structlog.testing.capture_logs() as logs:
        for answer in answers:
            await notifier(Recorder(answer)).send(DEVICE, DATA)
    sends = [(e["log_level"], e["outcome"]) for e in logs if e["event"] == "fcm.send"]
    assert sends == [("debug", "delivered"), ("info", "unregistered")]
