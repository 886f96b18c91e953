"""The Dataverse Web API emulation: PATCH semantics, paging, WhoAmI, bearer checks."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

FIELD = "hlf_listedonwebsite"


def seed(admin: AdminClient, count: int, *, listed: bool = True) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    admin.put_contacts([{"contactid": cid, "listed": listed} for cid in ids])
    return ids


def listed(admin: AdminClient) -> dict[str, bool]:
    return {row["contactid"]: row["listed"] for row in admin.contacts()}


def test_patch_with_if_match_to_unknown_contact_is_404(api: httpx.Client) -> None:
    """A PATCH with If-Match: * to an unknown contact answers 404 with Dataverse's error code."""
    response = api.patch(
        f"contacts({uuid.uuid4()})", json={FIELD: False}, headers={"If-Match": "*"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"


def test_patch_updates_the_listing(api: httpx.Client, admin: AdminClient) -> None:
    """A PATCH with If-Match: * to a known contact answers 204 and changes its listing."""
    (cid,) = seed(admin, 1)
    response = api.patch(f"contacts({cid})", json={FIELD: False}, headers={"If-Match": "*"})
    assert response.status_code == 204
    assert response.headers["OData-EntityId"].endswith(f"/api/data/v9.2/contacts({cid})")
    assert listed(admin) == {cid: False}


def test_patch_without_if_match_upserts(api: httpx.Client, admin: AdminClient) -> None:
    """Without If-Match a PATCH creates the contact, as Dataverse's upsert does."""
    cid = str(uuid.uuid4())
    assert api.patch(f"contacts({cid})", json={FIELD: True}).status_code == 204
    assert listed(admin) == {cid: True}


def test_unknown_field_is_400(api: httpx.Client, admin: AdminClient) -> None:
    """A body naming a property the contact does not have answers 400 with an OData error."""
    (cid,) = seed(admin, 1)
    response = api.patch(f"contacts({cid})", json={"nosuchfield": 1}, headers={"If-Match": "*"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"
    assert "nosuchfield" in response.json()["error"]["message"]


def test_malformed_json_and_wrong_type_are_400(api: httpx.Client, admin: AdminClient) -> None:
    """Malformed JSON and a non-boolean listing value both answer 400 and change nothing."""
    (cid,) = seed(admin, 1)
    headers = {"If-Match": "*", "Content-Type": "application/json"}
    assert api.patch(f"contacts({cid})", content=b'{"hlf_', headers=headers).status_code == 400
    assert api.patch(f"contacts({cid})", json={FIELD: "no"}, headers=headers).status_code == 400
    assert listed(admin) == {cid: True}


def test_stale_etag_is_412(api: httpx.Client, admin: AdminClient) -> None:
    """If-Match with an etag the row has moved past answers 412 Precondition Failed."""
    (cid,) = seed(admin, 1)
    etag = api.get(f"contacts({cid})").json()["@odata.etag"]
    assert api.patch(f"contacts({cid})", json={FIELD: False}, headers={"If-Match": etag}).is_success
    stale = api.patch(f"contacts({cid})", json={FIELD: True}, headers={"If-Match": etag})
    assert stale.status_code == 412


def test_configured_entity_set_and_field(api: httpx.Client, admin: AdminClient) -> None:
    """The entity set and listing field follow the sandbox settings, like hlfsync's settings."""
    admin.settings(entity_set="hlf_mentors", listing_field="hlf_visible")
    (cid,) = seed(admin, 1)
    assert api.patch(f"contacts({cid})", json={FIELD: False}).status_code == 404
    response = api.patch(
        f"hlf_mentors({cid})", json={"hlf_visible": False}, headers={"If-Match": "*"}
    )
    assert response.status_code == 204
    assert listed(admin) == {cid: False}


def page_through(api: httpx.Client, page_size: int) -> tuple[list[dict[str, Any]], int]:
    url: str | None = f"contacts?$select=contactid,{FIELD}"
    rows: list[dict[str, Any]] = []
    pages = 0
    while url is not None:
        response = api.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = response.json()
        rows.extend(body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
    return rows, pages


def test_paging_returns_every_contact_exactly_once(api: httpx.Client, admin: AdminClient) -> None:
    """Following @odata.nextLink past many pages returns each contact exactly once, in order."""
    ids = seed(admin, 2_345)
    rows, pages = page_through(api, 500)
    got = [row["contactid"] for row in rows]
    assert got == sorted(ids)
    assert pages == 5
    assert all(row[FIELD] is True for row in rows)


@pytest.mark.slow
def test_paging_100k_contacts_is_quick(api: httpx.Client, admin: AdminClient) -> None:
    """100,000 contacts page through at 5,000 a page in well under the test timeout."""
    ids = seed(admin, 100_000)
    started = time.perf_counter()
    rows, pages = page_through(api, 5_000)
    elapsed = time.perf_counter() - started
    assert pages == 20
    assert len({row["contactid"] for row in rows}) == len(ids)
    assert elapsed < 20.0


def test_next_link_is_absolute_with_a_paging_cookie(api: httpx.Client, admin: AdminClient) -> None:
    """The nextLink is an absolute URL carrying $select and a Dataverse-style $skiptoken cookie."""
    seed(admin, 3)
    body = api.get(
        f"contacts?$select=contactid,{FIELD}", headers={"Prefer": "odata.maxpagesize=2"}
    ).json()
    link = body["@odata.nextLink"]
    assert link.startswith("https://127.0.0.1:")
    assert f"$select=contactid,{FIELD}" in link
    assert "$skiptoken=%3Ccookie%20pagenumber%3D%222%22%20pagingcookie%3D%22%253Ccookie" in link
    assert body["@odata.context"].endswith(f"$metadata#contacts(contactid,{FIELD})")


def test_who_am_i(api: httpx.Client) -> None:
    """WhoAmI answers the three ids and an @odata.context."""
    body = api.get("WhoAmI").json()
    assert set(body) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
    uuid.UUID(body["UserId"])


def test_missing_or_unknown_token_is_401(sandbox: SandboxServer, http: httpx.Client) -> None:
    """Without a valid bearer token the Web API answers 401 with a Bearer challenge."""
    url = f"{sandbox.url}/api/data/v9.2/WhoAmI"
    for headers in ({}, {"authorization": "Bearer nope"}):
        response = http.get(url, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_expired_token_is_401(api: httpx.Client, admin: AdminClient) -> None:
    """A token past its expiry is refused with 401."""
    assert api.get("WhoAmI").status_code == 200
    admin.expire_tokens("entra")
    response = api.get("WhoAmI")
    assert response.status_code == 401
    assert response.headers["x-sandbox-auth"] == "expired"


def test_short_token_lifetime(api: httpx.Client, admin: AdminClient, new_token: Any) -> None:
    """token_ttl_s makes new tokens expire that soon, and the token answer says so."""
    admin.settings(token_ttl_s=0.05)
    short = new_token()
    time.sleep(0.1)
    response = api.get("WhoAmI", headers={"authorization": f"Bearer {short}"})
    assert response.status_code == 401
