"""`$batch`: multipart framing, change sets all-or-nothing, limits, and the request log."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

FIELD = "hlf_listedonwebsite"
ROOT = "/api/data/v9.2/"


def patch_part(url: str, listed: bool, content_id: int | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    return (
        f"{head}\r\nPATCH {url} HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: *\r\n\r\n"
        f"{json.dumps({FIELD: listed})}\r\n"
    )


def get_part(url: str) -> str:
    return (
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET {url} HTTP/1.1\r\nAccept: application/json\r\n\r\n"
    )


def changeset(boundary: str, parts: list[str]) -> str:
    body = "".join(f"--{boundary}\r\n{part}" for part in parts) + f"--{boundary}--\r\n"
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{body}"


def batch(api: httpx.Client, parts: list[str], prefer: str | None = None) -> httpx.Response:
    boundary = f"batch_{uuid.uuid4()}"
    body = "".join(f"--{boundary}\r\n{part}" for part in parts) + f"--{boundary}--\r\n"
    headers = {"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"}
    if prefer:
        headers["Prefer"] = prefer
    return api.post("$batch", content=body.encode(), headers=headers)


def statuses(response: httpx.Response) -> list[int]:
    return [int(code) for code in re.findall(r"HTTP/1\.1 (\d{3}) ", response.text)]


def seed(admin: AdminClient, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    admin.put_contacts([{"contactid": cid, "listed": True} for cid in ids])
    return ids


def test_batch_round_trip_with_a_changeset(
    api: httpx.Client, admin: AdminClient, sandbox: SandboxServer
) -> None:
    """A change set of PATCHes (relative and absolute URLs) and a GET come back as one multipart."""
    a, b, c = seed(admin, 3)
    parts = [
        changeset(
            f"changeset_{uuid.uuid4()}",
            [
                patch_part(f"{ROOT}contacts({a})", False, content_id=1),
                patch_part(f"{sandbox.url}{ROOT}contacts({b})", False, content_id=2),
            ],
        ),
        get_part(f"{ROOT}contacts({c})?$select=contactid,{FIELD}"),
    ]
    response = batch(api, parts)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert statuses(response) == [204, 204, 200]
    assert re.findall(r"Content-ID: (\d+)", response.text) == ["1", "2"]
    assert "changesetresponse_" in response.text
    state = {row["contactid"]: row["listed"] for row in admin.contacts()}
    assert state == {a: False, b: False, c: True}
    logged = admin.requests(kind="dataverse", method="PATCH")
    assert sorted(entry["contactid"] or "" for entry in logged) == sorted([a, b])
    assert all(entry["in_batch"] and entry["path"].startswith(ROOT) for entry in logged)


def test_failed_changeset_changes_nothing(api: httpx.Client, admin: AdminClient) -> None:
    """One failure in a change set rolls back the rest and answers only that failure."""
    (a,) = seed(admin, 1)
    unknown = uuid.uuid4()
    parts = [
        changeset(
            f"changeset_{uuid.uuid4()}",
            [
                patch_part(f"{ROOT}contacts({a})", False, content_id=1),
                patch_part(f"{ROOT}contacts({unknown})", False, content_id=2),
            ],
        )
    ]
    response = batch(api, parts)
    assert statuses(response) == [404]
    assert "0x80040217" in response.text
    assert admin.contacts()[0]["listed"] is True


def test_batch_stops_at_first_failure_unless_continue_on_error(
    api: httpx.Client, admin: AdminClient
) -> None:
    """Outside change sets a failure ends the batch, unless Prefer: odata.continue-on-error."""
    (a,) = seed(admin, 1)
    parts = [
        patch_part(f"{ROOT}contacts({uuid.uuid4()})", False),
        patch_part(f"{ROOT}contacts({a})", False),
    ]
    assert statuses(batch(api, parts)) == [404]
    assert admin.contacts()[0]["listed"] is True
    response = batch(api, parts, prefer="odata.continue-on-error")
    assert statuses(response) == [404, 204]
    assert response.headers["Preference-Applied"] == "odata.continue-on-error"
    assert admin.contacts()[0]["listed"] is False


def test_more_than_1000_requests_is_400(api: httpx.Client) -> None:
    """A batch of 1001 requests is refused whole with 400."""
    parts = [patch_part(f"{ROOT}contacts({uuid.uuid4()})", False) for _ in range(1001)]
    response = batch(api, parts)
    assert response.status_code == 400
    assert "1000" in response.json()["error"]["message"]


def test_inner_requests_meet_fault_rules(api: httpx.Client, admin: AdminClient) -> None:
    """A PATCH fault rule fails the matching request inside a batch, not the batch itself."""
    a, b = seed(admin, 2)
    admin.set_faults([{"method": "PATCH", "contactid": b, "status": 503}])
    parts = [patch_part(f"{ROOT}contacts({a})", False), patch_part(f"{ROOT}contacts({b})", False)]
    response = batch(api, parts, prefer="odata.continue-on-error")
    assert response.status_code == 200
    assert statuses(response) == [204, 503]


def test_malformed_batch_is_400(api: httpx.Client) -> None:
    """A body that is not multipart with the declared boundary answers 400."""
    response = api.post(
        "$batch", content=b"junk", headers={"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert response.status_code == 400
