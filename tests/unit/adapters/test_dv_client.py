"""DataverseClient over httpx.MockTransport: headers, token refresh, malformed answers, paging."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from _adapter_fakes import (
    ORG,
    ROOT,
    SECRET_TOKEN,
    FakeTokens,
    Recorder,
    change,
    client_for,
    json_response,
    odata,
)

from hlfsync.core.errors import AuthFailure, Permanent, SyncFailure, Transient
from hlfsync.dataverse.client import DataverseClient
from hlfsync.dynamics.port import ContactListing, DynamicsClient, Identity

pytestmark = pytest.mark.anyio

NO_CONTENT = httpx.Response(204)


def test_dataverse_client_satisfies_the_protocol() -> None:
    """DataverseClient is a DynamicsClient for the dataverse-v9 contract."""
    client: DynamicsClient = client_for(Recorder(NO_CONTENT))
    assert client.contract == "dataverse-v9"


async def test_apply_sends_one_patch_with_the_contract_headers() -> None:
    """PATCH carries If-Match *, OData versions, JSON, the correlation id and a bearer token."""
    recorder = Recorder(NO_CONTENT)
    tokens = FakeTokens()
    item = change("restore")
    await client_for(recorder, tokens).apply(item)
    (request,) = recorder.requests
    assert request.method == "PATCH"
    assert str(request.url) == f"{ROOT}/contacts({item.contact_id})"
    assert request.headers["If-Match"] == "*"
    assert request.headers["OData-MaxVersion"] == "4.0"
    assert request.headers["OData-Version"] == "4.0"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["x-ms-client-request-id"] == item.correlation_id
    assert request.headers["Authorization"] == f"Bearer {SECRET_TOKEN}-1"
    assert json.loads(request.content) == {"hlf_listedonwebsite": True}


async def test_remove_unlists_through_the_configured_field() -> None:
    """A remove sends false to the configured listing field of the configured entity set."""
    recorder = Recorder(NO_CONTENT)
    item = change("remove")
    await client_for(recorder, entity_set="hlf_mentors", listing_field="hlf_public").apply(item)
    assert recorder.requests[0].url.path.endswith(f"/hlf_mentors({item.contact_id})")
    assert json.loads(recorder.requests[0].content) == {"hlf_public": False}


async def test_apply_uses_the_explicit_timeout() -> None:
    """The configured timeout travels with every request."""
    recorder = Recorder(NO_CONTENT)
    await client_for(recorder, timeout_s=3.5).apply(change())
    timeout = recorder.requests[0].extensions["timeout"]
    assert timeout == {"connect": 3.5, "read": 3.5, "write": 3.5, "pool": 3.5}


async def test_a_401_refreshes_the_token_once_and_resends() -> None:
    """On a 401 the token is invalidated once and the request sent once more with a new token."""
    recorder = Recorder(odata(401, "0x80090002", "token expired"), NO_CONTENT)
    tokens = FakeTokens()
    await client_for(recorder, tokens).apply(change())
    assert len(recorder.requests) == 2
    assert tokens.invalidated == [f"{SECRET_TOKEN}-1"]
    assert recorder.requests[1].headers["Authorization"] == f"Bearer {SECRET_TOKEN}-2"


async def test_a_second_401_is_an_auth_failure() -> None:
    """Two 401s in a row raise AuthFailure after exactly two sends and one invalidation."""
    recorder = Recorder(odata(401, "0x80090002", "no"))
    tokens = FakeTokens()
    with pytest.raises(AuthFailure) as caught:
        await client_for(recorder, tokens).apply(change())
    assert len(recorder.requests) == 2
    assert len(tokens.invalidated) == 1
    assert caught.value.status == 401


async def test_a_403_is_an_auth_failure_without_refresh() -> None:
    """A 403 (privilege) is not cured by a new token: no resend."""
    recorder = Recorder(odata(403, "0x80040220", "missing privilege"))
    tokens = FakeTokens()
    with pytest.raises(AuthFailure):
        await client_for(recorder, tokens).apply(change())
    assert len(recorder.requests) == 1
    assert tokens.invalidated == []


@pytest.mark.parametrize("status", [500, 503, 429, 408, 404])
async def test_no_quiet_retries(status: int) -> None:
    """Any failure other than a first 401 is raised after a single send."""
    recorder = Recorder(odata(status, "0x80040216", "failed"))
    with pytest.raises(SyncFailure):
        await client_for(recorder).apply(change())
    assert len(recorder.requests) == 1


async def test_missing_contact_is_permanent_thanks_to_if_match() -> None:
    """If-Match: * makes an unknown contact a 404, which is Permanent (no accidental create)."""
    recorder = Recorder(odata(404, "0x80040217", "contact With Id = x Does Not Exist"))
    with pytest.raises(Permanent) as caught:
        await client_for(recorder).apply(change())
    assert caught.value.code == "0x80040217"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(204),
        httpx.Response(200, content=b""),
        json_response(200, {"contactid": "x"}),
    ],
)
async def test_write_answers_that_count_as_applied(response: httpx.Response) -> None:
    """A 2xx with no body or a JSON body means the PATCH applied: no error, no second request."""
    recorder = Recorder(response)
    assert await client_for(recorder).apply(change()) is None
    assert [r.method for r in recorder.requests] == ["PATCH"]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(
            200, content=b"<html>Proxy login</html>", headers={"content-type": "text/html"}
        ),
        httpx.Response(200, content=b"ok", headers={"content-type": "text/plain"}),
        httpx.Response(200, content=b"ok"),
    ],
)
async def test_a_2xx_write_answered_by_something_else_is_transient(
    response: httpx.Response,
) -> None:
    """An HTML or text page with a 2xx may not have applied: Transient, so it is sent again."""
    with pytest.raises(Transient, match="cannot tell if it applied"):
        await client_for(Recorder(response)).apply(change())


async def test_who_am_i_returns_the_identity() -> None:
    """WhoAmI is a GET whose UserId and OrganizationId come back as an Identity."""
    doc = {"BusinessUnitId": "b", "UserId": "u", "OrganizationId": "o"}
    recorder = Recorder(json_response(200, doc))
    assert await client_for(recorder).who_am_i() == Identity("u", "o")
    (request,) = recorder.requests
    assert request.method == "GET"
    assert str(request.url) == f"{ROOT}/WhoAmI"
    assert request.headers["x-ms-client-request-id"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            httpx.Response(200, content=b"<html>hi</html>", headers={"content-type": "text/html"}),
            Transient,
        ),
        (
            httpx.Response(
                200, content=b'{"UserId": "u"', headers={"content-type": "application/json"}
            ),
            Transient,
        ),
        (
            httpx.Response(200, content=b'{"UserId": "u"}', headers={"content-type": "text/plain"}),
            Transient,
        ),
        (httpx.Response(200, content=b"", headers={"content-type": "application/json"}), Transient),
        (
            httpx.Response(200, content=b"null", headers={"content-type": "application/json"}),
            Permanent,
        ),
        (json_response(200, {"OrganizationId": "o"}), Permanent),
        (json_response(200, ["UserId"]), Permanent),
    ],
)
async def test_malformed_who_am_i_answers_are_classified(
    response: httpx.Response, expected: type[SyncFailure]
) -> None:
    """HTML, cut JSON, wrong type, empty: Transient; valid JSON of the wrong shape: Permanent."""
    with pytest.raises(expected):
        await client_for(Recorder(response)).who_am_i()


def _page(rows: list[tuple[str, object]], next_link: str | None = None) -> httpx.Response:
    doc: dict[str, object] = {
        "value": [{"contactid": cid, "hlf_listedonwebsite": listed} for cid, listed in rows]
    }
    if next_link is not None:
        doc["@odata.nextLink"] = next_link
    return json_response(200, doc)


A, B, C = (
    "00000000-0000-4000-8000-00000000000a",
    "00000000-0000-4000-8000-00000000000b",
    "00000000-0000-4000-8000-00000000000c",
)


async def _collect(client: DataverseClient, page_size: int = 2) -> list[list[ContactListing]]:
    return [page async for page in client.listings(page_size)]


async def test_listings_follow_next_link_page_by_page() -> None:
    """Pages are requested with the page-size preference and nextLink is followed to the end."""
    link1 = f"{ROOT}/contacts?$select=contactid,hlf_listedonwebsite&$skiptoken=1"
    link2 = f"{ROOT}/contacts?$select=contactid,hlf_listedonwebsite&$skiptoken=2"
    recorder = Recorder(_page([(A, True), (B, False)], link1), _page([], link2), _page([(C, None)]))
    client = client_for(recorder)
    pages = await _collect(client, page_size=2)
    assert [[(str(r.contact_id)[-1], r.listed) for r in page] for page in pages] == [
        [("a", True), ("b", False)],
        [("c", False)],
    ]
    first, second, third = recorder.requests
    assert str(first.url) == f"{ROOT}/contacts?$select=contactid,hlf_listedonwebsite"
    assert first.headers["Prefer"] == "odata.maxpagesize=2"
    assert str(second.url) == link1
    assert str(third.url) == link2
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in recorder.requests)


async def test_listings_skip_and_count_unusable_rows() -> None:
    """Rows without a valid contactid or listing value are skipped, counted and logged."""
    recorder = Recorder(_page([(A, True), ("nope", True), (B, "maybe")]))
    client = client_for(recorder)
    with structlog.testing.capture_logs() as logs:
        pages = await _collect(client)
    assert [len(p) for p in pages] == [1]
    assert client.skipped_rows == 2
    assert {"event": "dataverse.listings.skipped_rows", "count": 2, "log_level": "warning"} in logs


async def test_listings_never_follow_a_next_link_to_another_host() -> None:
    """A nextLink outside the organisation is a contract violation; the token is not sent there."""
    recorder = Recorder(_page([(A, True)], "https://evil.example/steal"))
    client = client_for(recorder)
    with pytest.raises(Permanent, match="leaves the organisation"):
        await _collect(client)
    assert [r.url.host for r in recorder.requests] == ["hlf.crm4.dynamics.com"]


async def test_listings_stop_on_a_repeating_next_link() -> None:
    """A nextLink that points back at a page already read would loop forever: Permanent."""
    first = f"{ROOT}/contacts?$select=contactid,hlf_listedonwebsite"
    with pytest.raises(Permanent, match="repeats"):
        await _collect(client_for(Recorder(_page([(A, True)], first))))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, content=b"<html/>", headers={"content-type": "text/html"}), Transient),
        (
            httpx.Response(
                200, content=b'{"value": [', headers={"content-type": "application/json"}
            ),
            Transient,
        ),
        (json_response(200, {"items": []}), Permanent),
        (odata(503, "0x80040216", "busy"), Transient),
    ],
)
async def test_malformed_pages_are_classified(
    response: httpx.Response, expected: type[SyncFailure]
) -> None:
    """A page that is HTML or cut JSON is Transient; one that is not a collection is Permanent."""
    with pytest.raises(expected):
        await _collect(client_for(Recorder(response)))


async def test_aclose_closes_http_and_tokens() -> None:
    """aclose releases the HTTP client and the token source."""
    tokens = FakeTokens()
    client = client_for(Recorder(NO_CONTENT), tokens)
    await client.aclose()
    assert tokens.closed
    assert client._http.is_closed


async def test_no_token_in_failures_or_logs() -> None:
    """Whatever goes wrong, neither exception messages nor log events contain the token."""
    answers = [
        odata(401, "x", "expired"),
        odata(401, "x", "expired"),
        odata(500, "x", "boom"),
        httpx.Response(200, content=b"<html/>", headers={"content-type": "text/html"}),
    ]

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    texts: list[str] = []
    with structlog.testing.capture_logs() as logs:
        for answer in [*answers, fail]:
            with pytest.raises(SyncFailure) as caught:
                await client_for(Recorder(answer)).apply(change())
            texts += [str(caught.value), caught.value.summary(), repr(caught.value)]
    texts += [repr(event) for event in logs]
    assert texts
    assert not [t for t in texts if SECRET_TOKEN in t]
    assert SECRET_TOKEN not in repr(client_for(Recorder(NO_CONTENT)))


async def test_each_call_is_logged_with_its_correlation_id() -> None:
    """One debug event per HTTP call names method, path, status and correlation id."""
    item = change()
    with structlog.testing.capture_logs() as logs:
        await client_for(Recorder(NO_CONTENT)).apply(item)
    (event,) = [e for e in logs if e["event"] == "dataverse.call"]
    assert event["method"] == "PATCH"
    assert event["status"] == 204
    assert event["correlation_id"] == item.correlation_id
    assert event["path"] == f"/api/data/v9.2/contacts({item.contact_id})"


def test_org_url_is_normalised() -> None:
    """A trailing slash on the org URL does not double up in request URLs."""
    client = DataverseClient(httpx.AsyncClient(), FakeTokens(), ORG + "/")
    assert client._root == ROOT
