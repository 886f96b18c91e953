"""TokenProvider with the real msal library over a fake requests session (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import structlog
from _adapter_fakes import ORG, Recorder, change

from hlfsync.core.errors import AuthFailure, Transient
from hlfsync.dataverse.auth import TokenProvider, is_microsoft_authority
from hlfsync.dataverse.client import DataverseClient

pytestmark = pytest.mark.anyio

AUTHORITY = "https://127.0.0.1:8443/tenant-1"
SECRET = "client-secret-VALUE-42"
ACCESS_TOKEN = "eyJhbGciOi.ACCESS-TOKEN-VALUE"


@dataclass
class FakeResponse:
    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


Answer = FakeResponse | Callable[[], FakeResponse]


def ok_token(token: str = ACCESS_TOKEN, expires_in: int = 3599) -> FakeResponse:
    body = {"token_type": "Bearer", "expires_in": expires_in, "access_token": token}
    return FakeResponse(200, json.dumps(body), {"content-type": "application/json"})


def discovery(authority: str = AUTHORITY) -> FakeResponse:
    doc = {
        "issuer": f"{authority}/v2.0",
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
    }
    return FakeResponse(200, json.dumps(doc), {"content-type": "application/json"})


class FakeSession:
    """Stands in for msal's requests.Session: answers GETs and POSTs from scripts, records calls."""

    def __init__(self, posts: list[Answer], gets: list[Answer] | None = None) -> None:
        self.posts = posts
        self.gets = gets or [discovery()]
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.closed = False

    def _next(self, script: list[Answer]) -> FakeResponse:
        answer = script.pop(0) if len(script) > 1 else script[0]
        return answer() if callable(answer) else answer

    def get(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append(("GET", url, kwargs))
        return self._next(self.gets)

    def post(self, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append(("POST", url, kwargs))
        return self._next(self.posts)

    def close(self) -> None:
        self.closed = True

    @property
    def token_posts(self) -> int:
        return sum(1 for method, _, _ in self.calls if method == "POST")


def provider(session: FakeSession, authority: str = AUTHORITY) -> TokenProvider:
    return TokenProvider(
        client_id="client-1",
        client_secret=SECRET,
        authority=authority,
        resource=ORG,
        http_client=session,
    )


async def test_concurrent_callers_share_one_token_request() -> None:
    """Twenty callers at once cause one discovery and one token POST, and all get the token."""
    session = FakeSession([ok_token()])
    tokens = provider(session)
    results = await asyncio.gather(*(tokens.token() for _ in range(20)))
    assert set(results) == {ACCESS_TOKEN}
    assert session.token_posts == 1
    assert tokens.fetches == 1


async def test_local_authority_skips_instance_discovery() -> None:
    """A non-Microsoft authority is read at its own .well-known address; Microsoft is not asked."""
    session = FakeSession([ok_token()])
    await provider(session).token()
    urls = [url for _, url, _ in session.calls]
    assert urls[0] == f"{AUTHORITY}/v2.0/.well-known/openid-configuration"
    assert urls[1] == f"{AUTHORITY}/oauth2/v2.0/token"
    assert not [u for u in urls if "login.microsoftonline.com" in u]


async def test_token_request_asks_for_the_org_default_scope() -> None:
    """The client-credentials request asks for `{org}/.default`."""
    session = FakeSession([ok_token()])
    await provider(session).token()
    (post,) = [kwargs for method, _, kwargs in session.calls if method == "POST"]
    assert post["data"]["grant_type"] == "client_credentials"
    assert post["data"]["scope"] == f"{ORG}/.default"


async def test_token_is_cached_across_many_calls_through_the_client() -> None:
    """Thirty PATCHes through DataverseClient cost one token request."""
    session = FakeSession([ok_token()])
    tokens = provider(session)
    recorder = Recorder(httpx.Response(204))
    client = DataverseClient(httpx.AsyncClient(transport=recorder.transport()), tokens, ORG)
    for _ in range(30):
        await client.apply(change())
    assert len(recorder.requests) == 30
    assert session.token_posts == 1
    assert {r.headers["Authorization"] for r in recorder.requests} == {f"Bearer {ACCESS_TOKEN}"}


async def test_a_short_lived_token_is_still_reused_for_half_its_life() -> None:
    """A 60-second token (shorter than msal's 5-minute margin) is reused, not fetched per call."""
    session = FakeSession([ok_token(expires_in=60)])
    tokens = provider(session)
    for _ in range(10):
        await tokens.token()
    assert session.token_posts == 1


async def test_invalidate_forces_a_new_token_request() -> None:
    """After invalidate(), the next token() reaches the authority again, past msal's cache."""
    session = FakeSession([ok_token("first"), ok_token("second")])
    tokens = provider(session)
    assert await tokens.token() == "first"
    tokens.invalidate("first")
    assert await tokens.token() == "second"
    assert session.token_posts == 2


async def test_invalidating_a_stale_token_keeps_the_newer_one() -> None:
    """A late invalidate for a token already replaced does not throw the new one away."""
    session = FakeSession([ok_token("first"), ok_token("second"), ok_token("third")])
    tokens = provider(session)
    await tokens.token()
    tokens.invalidate("first")
    assert await tokens.token() == "second"
    tokens.invalidate("first")
    assert await tokens.token() == "second"
    assert session.token_posts == 2


async def test_a_refused_token_request_is_an_auth_failure_with_the_aadsts_code() -> None:
    """invalid_client becomes AuthFailure carrying AADSTS7000215 and never the secret."""
    refusal = {
        "error": "invalid_client",
        "error_description": f"AADSTS7000215: Invalid client secret provided ({SECRET}).\r\n"
        "Trace ID: abc\r\nCorrelation ID: def",
        "error_codes": [7000215],
    }
    session = FakeSession(
        [FakeResponse(401, json.dumps(refusal), {"content-type": "application/json"})]
    )
    with pytest.raises(AuthFailure) as caught:
        await provider(session).token()
    assert caught.value.code == "AADSTS7000215"
    assert "invalid_client" in caught.value.detail
    assert SECRET not in caught.value.summary()
    assert "Trace ID" not in caught.value.detail


async def test_aadsts_code_is_found_in_the_description_without_error_codes() -> None:
    """Without `error_codes`, the AADSTS code is read from the description."""
    refusal = {"error": "unauthorized_client", "error_description": "AADSTS700016: app not found"}
    session = FakeSession([FakeResponse(400, json.dumps(refusal))])
    with pytest.raises(AuthFailure) as caught:
        await provider(session).token()
    assert caught.value.code == "AADSTS700016"


async def test_temporarily_unavailable_is_transient() -> None:
    """OAuth's temporarily_unavailable means try later, not broken credentials."""
    refusal = {"error": "temporarily_unavailable", "error_description": "AADSTS50196: busy"}
    session = FakeSession([FakeResponse(400, json.dumps(refusal))])
    with pytest.raises(Transient):
        await provider(session).token()


def _raise_connection_error() -> FakeResponse:
    raise requests.ConnectionError("connection refused to the authority")


@pytest.mark.parametrize(
    ("posts", "gets"),
    [
        ([_raise_connection_error], None),
        ([FakeResponse(503, "<html>down</html>")], None),
        ([FakeResponse(200, "<html>proxy</html>")], None),
        ([ok_token()], [_raise_connection_error]),
        ([ok_token()], [FakeResponse(502, "bad gateway")]),
        ([ok_token()], [FakeResponse(200, "<html>proxy</html>")]),
    ],
)
async def test_network_and_server_trouble_at_the_authority_is_transient(
    posts: list[Answer], gets: list[Answer] | None
) -> None:
    """Unreachable authority, 5xx, or a non-JSON answer (token or discovery): Transient."""
    with pytest.raises(Transient):
        await provider(FakeSession(posts, gets)).token()


async def test_an_unknown_tenant_is_an_auth_failure() -> None:
    """A 4xx from discovery (unknown tenant, wrong authority) needs a person: AuthFailure."""
    session = FakeSession([ok_token()], [FakeResponse(400, '{"error":"invalid_tenant"}')])
    with pytest.raises(AuthFailure, match="configuration"):
        await provider(session).token()


async def test_recovery_after_a_transient_failure() -> None:
    """A failed token request is not cached: the next call tries again and succeeds."""
    session = FakeSession([_raise_connection_error, ok_token()])
    tokens = provider(session)
    with pytest.raises(Transient):
        await tokens.token()
    assert await tokens.token() == ACCESS_TOKEN


async def test_no_token_or_secret_in_logs_or_repr() -> None:
    """Logs name the token source and lifetime, never the token; repr shows no secret."""
    session = FakeSession([ok_token()])
    tokens = provider(session)
    with structlog.testing.capture_logs() as logs:
        await tokens.token()
        tokens.invalidate()
    text = repr(logs) + repr(tokens) + repr(tokens._cached)
    assert ACCESS_TOKEN not in text
    assert SECRET not in text
    assert any(e["event"] == "dataverse.token" for e in logs)


def test_close_closes_the_authority_session() -> None:
    """close() releases msal's HTTP session once an app exists."""
    session = FakeSession([ok_token()])
    tokens = provider(session)
    tokens.close()  # nothing built yet: no error
    asyncio.run(tokens.token())
    tokens.close()
    assert session.closed


@pytest.mark.parametrize(
    ("authority", "instance_discovery"),
    [
        ("https://login.microsoftonline.com/tenant-1", None),
        ("https://127.0.0.1:8443/tenant-1", False),
        ("https://sandbox.local/tenant-1", False),
    ],
)
async def test_msal_is_built_with_verify_timeout_and_discovery_setting(
    authority: str, instance_discovery: bool | None
) -> None:
    """msal gets the CA bundle, the timeout, and instance discovery off for local authorities."""
    seen: dict[str, Any] = {}

    class FakeApp:
        token_cache = None

        def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
            return {"access_token": "t", "expires_in": 3600}

    def factory(client_id: str, **kwargs: Any) -> FakeApp:
        seen.update(kwargs, client_id=client_id)
        return FakeApp()

    tokens = TokenProvider(
        client_id="c",
        client_secret=SECRET,
        authority=authority,
        resource=ORG,
        ca_bundle="/etc/hlf/ca.pem",
        timeout_s=7.0,
        app_factory=factory,
    )
    assert await tokens.token() == "t"
    assert seen["verify"] == "/etc/hlf/ca.pem"
    assert seen["timeout"] == 7.0
    assert seen["instance_discovery"] is instance_discovery
    assert seen["client_credential"] == SECRET
    assert is_microsoft_authority(authority) is (instance_discovery is None)


class _CapturingAdapter(requests.adapters.BaseAdapter):
    """A requests transport that records the TLS and timeout options of each send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(kwargs)
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        return response

    def close(self) -> None:
        pass


def test_configured_ca_bundle_beats_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE in the environment must not replace the configured CA bundle."""
    from hlfsync.outbound.tls import requests_session

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = requests_session("/etc/hlf/sandbox-ca.pem", 4.0)
    adapter = _CapturingAdapter()
    session.mount("https://", adapter)
    session.get("https://127.0.0.1:8443/tenant/v2.0/.well-known/openid-configuration")
    session.post("https://127.0.0.1:8443/tenant/oauth2/v2.0/token", data={"a": "b"})
    assert [s["verify"] for s in adapter.sent] == ["/etc/hlf/sandbox-ca.pem"] * 2
    assert [s["timeout"] for s in adapter.sent] == [4.0] * 2
