"""The webhook-v1 receiver: HMAC signatures, idempotency, unknown contacts, faults."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from hlfsync_sandbox import webhook
from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer


@pytest.fixture
def contact(admin: AdminClient) -> str:
    cid = str(uuid.uuid4())
    admin.put_contacts([{"contactid": cid, "listed": True}])
    return cid


def deliver(
    sandbox: SandboxServer,
    http: httpx.Client,
    contact_id: str,
    *,
    kind: str = "mentor.listing.removed",
    key: str | None = None,
    secret: str | None = None,
    timestamp: str | None = None,
) -> httpx.Response:
    body = json.dumps(
        {
            "type": kind,
            "mentor_id": str(uuid.uuid4()),
            "contact_id": contact_id,
            "occurred_at": "2026-11-23T12:00:00Z",
            "idempotency_key": key or str(uuid.uuid4()),
        }
    ).encode()
    stamp = timestamp or str(int(time.time()))
    signature = webhook.sign(secret or sandbox.webhook_secret, stamp, body)
    return http.post(
        f"{sandbox.url}/webhook",
        content=body,
        headers={
            "content-type": "application/json",
            "x-hlf-timestamp": stamp,
            "x-hlf-signature": signature,
        },
    )


def listed(admin: AdminClient) -> bool:
    return admin.contacts()[0]["listed"]


def test_signed_event_is_applied(
    sandbox: SandboxServer, http: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """A correctly signed removal unlists the contact; a restoration lists it again."""
    assert deliver(sandbox, http, contact).json()["status"] == "applied"
    assert listed(admin) is False
    assert deliver(sandbox, http, contact, kind="mentor.listing.restored").status_code == 200
    assert listed(admin) is True
    entries = admin.requests(kind="webhook")
    assert [(e["contactid"], e["listed"], e["status"]) for e in entries] == [
        (contact, False, 200),
        (contact, True, 200),
    ]


def test_bad_signature_is_401(
    sandbox: SandboxServer, http: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """A delivery signed with another secret, or signed too long ago, is refused with 401."""
    assert deliver(sandbox, http, contact, secret="not-the-secret").status_code == 401
    stale = str(int(time.time()) - 3600)
    assert deliver(sandbox, http, contact, timestamp=stale).status_code == 401
    assert listed(admin) is True


def test_second_delivery_is_a_no_op(
    sandbox: SandboxServer, http: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """A repeated idempotency key answers 200 without applying the event again."""
    assert deliver(sandbox, http, contact, key="k1").json()["status"] == "applied"
    admin.put_contacts([{"contactid": contact, "listed": True}])
    again = deliver(sandbox, http, contact, key="k1")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert listed(admin) is True


def test_unknown_contact_is_404(sandbox: SandboxServer, http: httpx.Client) -> None:
    """An event for a contact the portal does not know answers 404."""
    assert deliver(sandbox, http, str(uuid.uuid4())).status_code == 404


def test_webhook_faults_can_target_a_contact(
    sandbox: SandboxServer, http: httpx.Client, admin: AdminClient, contact: str
) -> None:
    """A rule with kind=webhook and a contactid (read from the body) fails that contact only."""
    other = str(uuid.uuid4())
    admin.put_contacts([{"contactid": other, "listed": True}])
    admin.set_faults([{"kind": "webhook", "contactid": contact, "status": 503}])
    assert deliver(sandbox, http, contact).status_code == 503
    assert deliver(sandbox, http, other).status_code == 200


def test_signed_ping_is_answered(sandbox: SandboxServer, http: httpx.Client) -> None:
    """A signed ping (hlfsync's webhook health check) answers 200 and changes nothing."""
    body = b'{"idempotency_key":"ping-1","occurred_at":"2026-11-23T12:00:00Z","type":"ping"}'
    stamp = str(int(time.time()))
    headers = {
        "x-hlf-timestamp": stamp,
        "x-hlf-signature": webhook.sign(sandbox.webhook_secret, stamp, body),
    }
    response = http.post(f"{sandbox.url}/webhook", content=body, headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "pong")
    headers["x-hlf-signature"] = webhook.sign("wrong", stamp, body)
    assert http.post(f"{sandbox.url}/webhook", content=body, headers=headers).status_code == 401
