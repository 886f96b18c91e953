"""webhook-v1: signed JSON events, signature verification and the shared classification table."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from _adapter_fakes import Recorder, change

from hlfsync.core.errors import (
    AuthFailure,
    ContractFailure,
    Permanent,
    SyncFailure,
    Throttled,
    Transient,
)
from hlfsync.dynamics import webhook
from hlfsync.dynamics.port import DynamicsClient
from hlfsync.dynamics.webhook import WebhookClient, is_fresh, sign, verify_signature

pytestmark = pytest.mark.anyio

URL = "https://portal.hlf.example/hooks/listing?code=URL-KEY-123"
SECRET = "whsec-SECRET-VALUE"
NOW_S = 1_736_155_800.0


def client_for(recorder: Recorder) -> WebhookClient:
    http = httpx.AsyncClient(transport=recorder.transport())
    return WebhookClient(http, URL, SECRET, now_s=lambda: NOW_S)


async def test_apply_posts_a_signed_event_a_receiver_can_verify() -> None:
    """The event carries the five fields; its signature verifies with the shared secret."""
    recorder = Recorder(httpx.Response(202))
    item = change("remove")
    await client_for(recorder).apply(item)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    event = json.loads(request.content)
    assert event == {
        "type": "mentor.listing.removed",
        "mentor_id": str(item.mentor_id),
        "contact_id": str(item.contact_id),
        "occurred_at": "2025-01-06T09:30:00+00:00",
        "idempotency_key": "sq-42",
    }
    assert request.headers["X-HLF-Timestamp"] == str(int(NOW_S))
    assert request.headers["Idempotency-Key"] == "sq-42"
    assert request.headers["X-Correlation-ID"] == item.correlation_id
    assert request.headers["Content-Type"] == "application/json"
    assert verify_signature(
        SECRET,
        request.headers["X-HLF-Timestamp"],
        request.content,
        request.headers["X-HLF-Signature"],
    )
    assert request.headers["X-HLF-Signature"].startswith("sha256=")


async def test_restore_is_the_restored_event() -> None:
    """A restore is sent as mentor.listing.restored."""
    recorder = Recorder(httpx.Response(200))
    await client_for(recorder).apply(change("restore"))
    assert json.loads(recorder.requests[0].content)["type"] == "mentor.listing.restored"


def test_naive_occurred_at_is_taken_as_utc() -> None:
    """occurred_at is always ISO 8601 with an offset."""
    from datetime import datetime

    body = webhook.event_body(change(occurred_at=datetime(2025, 1, 6, 9, 30)))
    assert json.loads(body)["occurred_at"] == "2025-01-06T09:30:00+00:00"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """The signature is the documented HMAC: sha256 over `{timestamp}.{body}`."""
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == f"sha256={expected}"
    assert sign(SECRET.encode(), "1700000000", body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "header"),
    [
        ("other-secret", "1", b"{}", None),
        (SECRET, "2", b"{}", None),
        (SECRET, "1", b"{ }", None),
        (SECRET, "1", b"{}", "sha256=deadbeef"),
        (SECRET, "1", b"{}", ""),
        (SECRET, "1", b"{}", "sha1=abc"),
        (SECRET, "1", b"{}", "sha256=\u00e9\u00e9"),
    ],
)
def test_verify_signature_rejects_anything_else(
    secret: str, timestamp: str, body: bytes, header: str | None
) -> None:
    """A wrong secret, timestamp, body or a garbled header does not verify."""
    good = sign(SECRET, "1", b"{}")
    assert verify_signature(SECRET, "1", b"{}", good)
    assert not verify_signature(secret, timestamp, body, good if header is None else header)


def test_is_fresh_refuses_old_and_future_timestamps() -> None:
    """Receivers refuse timestamps more than the tolerance away from now, and garbage."""
    assert is_fresh("1000", 1000.0)
    assert is_fresh(1000, 1299.0)
    assert not is_fresh(1000, 1301.0)
    assert not is_fresh(2000, 1000.0)
    assert not is_fresh("soon", 1000.0)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(401), AuthFailure),
        (httpx.Response(403), AuthFailure),
        (httpx.Response(400, json={"error": "bad event"}), Permanent),
        (httpx.Response(404), ContractFailure),
        (httpx.Response(410), ContractFailure),
        (httpx.Response(500), Transient),
        (httpx.Response(503, headers={"Retry-After": "9"}), Transient),
        (httpx.Response(429, headers={"Retry-After": "9"}), Throttled),
        (httpx.Response(301, headers={"Location": "https://elsewhere"}), Permanent),
    ],
)
async def test_answers_are_classified_by_the_shared_table(
    response: httpx.Response, expected: type[SyncFailure]
) -> None:
    """The webhook uses the same status table as Dataverse, with no quiet retry."""
    recorder = Recorder(response)
    with pytest.raises(expected):
        await client_for(recorder).apply(change())
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "response",
    [httpx.Response(200, text="OK"), httpx.Response(204), httpx.Response(200, json={"ok": True})],
)
async def test_any_2xx_is_accepted_whatever_the_body(response: httpx.Response) -> None:
    """Receivers may answer 2xx with any body; the idempotency key makes resends harmless."""
    recorder = Recorder(response)
    assert await client_for(recorder).apply(change()) is None
    assert [r.method for r in recorder.requests] == ["POST"]


async def test_timeout_is_transient() -> None:
    """A webhook that does not answer in time is Transient."""

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(Transient):
        await client_for(Recorder(hang)).apply(change())


async def test_who_am_i_posts_a_signed_ping() -> None:
    """The health check is a signed `ping` event; a 2xx proves URL, TLS and secret."""
    recorder = Recorder(httpx.Response(200))
    identity = await client_for(recorder).who_am_i()
    assert identity.user_id == "webhook:portal.hlf.example"
    (request,) = recorder.requests
    event = json.loads(request.content)
    assert event["type"] == "ping"
    assert event["idempotency_key"].startswith("ping-")
    assert verify_signature(
        SECRET,
        request.headers["X-HLF-Timestamp"],
        request.content,
        request.headers["X-HLF-Signature"],
    )


async def test_who_am_i_reports_a_rejected_secret_as_auth_failure() -> None:
    """A receiver that refuses the signature makes the health check an AuthFailure."""
    with pytest.raises(AuthFailure):
        await client_for(Recorder(httpx.Response(401))).who_am_i()


async def test_listings_are_unsupported() -> None:
    """webhook-v1 has no read API: listings raise Permanent(code='unsupported'), not []."""
    client = client_for(Recorder(httpx.Response(200)))
    with pytest.raises(Permanent) as caught:
        async for _ in client.listings(100):
            pass
    assert caught.value.code == "unsupported"


async def test_apply_many_is_sequential_with_one_result_each() -> None:
    """apply_many sends one POST per change in order and reports each outcome."""
    recorder = Recorder(httpx.Response(200), httpx.Response(422), httpx.Response(200))
    items = [change(), change(), change()]
    results = await client_for(recorder).apply_many(items)
    assert results[0] is None
    assert isinstance(results[1], Permanent)
    assert results[2] is None
    keys = [json.loads(r.content)["contact_id"] for r in recorder.requests]
    assert keys == [str(i.contact_id) for i in items]


async def test_no_secret_or_url_key_in_failures_or_logs() -> None:
    """Neither the HMAC secret nor a key in the URL reaches an exception or a log event."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for answer in [httpx.Response(401), httpx.Response(500, text=SECRET), refuse]:
            client = client_for(Recorder(answer))
            with pytest.raises(SyncFailure) as caught:
                await client.apply(change())
            texts += [caught.value.summary(), repr(caught.value), repr(client)]
    texts += [repr(e) for e in logs]
    assert not [t for t in texts if SECRET in t or "URL-KEY-123" in t]


def test_webhook_client_satisfies_the_protocol() -> None:
    """WebhookClient is a DynamicsClient for webhook-v1 and refuses an empty secret."""
    client: DynamicsClient = client_for(Recorder(httpx.Response(200)))
    assert client.contract == "webhook-v1"
    with pytest.raises(ValueError, match="secret"):
        WebhookClient(httpx.AsyncClient(), URL, "")


async def test_aclose_closes_http() -> None:
    """aclose releases the HTTP client."""
    client = client_for(Recorder(httpx.Response(200)))
    await client.aclose()
    assert client._http.is_closed
