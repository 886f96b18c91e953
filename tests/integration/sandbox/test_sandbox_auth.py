"""The token services against the real client libraries: msal and google-auth."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import google.auth.transport.requests
import httpx
import jwt
import msal
import pytest
import requests
from google.oauth2 import service_account

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def msal_app(
    sandbox: SandboxServer, session: requests.Session, secret: str | None = None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=secret or sandbox.client_secret,
        authority=sandbox.authority,
        instance_discovery=False,  # else msal asks login.microsoftonline.com about the host
        http_client=session,  # a session with verify=CA and trust_env=False
    )


def test_msal_acquires_and_caches_a_token(
    sandbox: SandboxServer, session: requests.Session, admin: AdminClient
) -> None:
    """Real msal gets a token through OIDC discovery, and a second call is served from its cache."""
    app = msal_app(sandbox, session)
    scopes = [f"{sandbox.url}/.default"]
    first = app.acquire_token_for_client(scopes=scopes)
    assert first["token_type"] == "Bearer", first
    second = app.acquire_token_for_client(scopes=scopes)
    assert second["access_token"] == first["access_token"]
    assert second["token_source"] == "cache"
    assert admin.stats()["token_requests"] == {"entra": 1}
    kinds = [entry["kind"] for entry in admin.requests()]
    assert kinds == ["discovery", "token"]


def test_msal_with_a_wrong_secret_gets_invalid_client(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    """A wrong client secret answers msal with invalid_client and an AADSTS code."""
    result = msal_app(sandbox, session, secret="wrong").acquire_token_for_client(
        scopes=[f"{sandbox.url}/.default"]
    )
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]


def test_wrong_scope_is_refused(sandbox: SandboxServer, http: httpx.Client) -> None:
    """A scope without /.default, or for another resource, is refused with 400."""
    for scope in (sandbox.url, "https://example.crm4.dynamics.com/.default"):
        response = http.post(
            f"{sandbox.authority}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "scope": scope,
            },
        )
        assert response.status_code == 400
        assert response.json()["error"] in {"invalid_scope", "invalid_resource"}


def test_secret_rotation_revokes_tokens(
    sandbox: SandboxServer, admin: AdminClient, api: httpx.Client, new_token: Callable[..., str]
) -> None:
    """After rotation the old secret is refused and tokens issued before stop working."""
    old_secret = sandbox.client_secret
    assert api.get("WhoAmI").status_code == 200
    admin.rotate_secret("brand-new-secret")
    assert sandbox.client_secret == "brand-new-secret"
    assert api.get("WhoAmI").status_code == 401
    with pytest.raises(httpx.HTTPStatusError) as refused:
        new_token(old_secret)
    assert refused.value.response.status_code == 401
    fresh = new_token("brand-new-secret")
    assert api.get("WhoAmI", headers={"authorization": f"Bearer {fresh}"}).status_code == 200


def test_auth_reject_refuses_credentials_and_tokens(
    admin: AdminClient, api: httpx.Client, new_token: Callable[..., str]
) -> None:
    """auth=reject makes the token endpoint answer 401 invalid_client and the Web API 401."""
    admin.set_faults(auth="reject")
    assert api.get("WhoAmI").status_code == 401
    with pytest.raises(httpx.HTTPStatusError) as refused:
        new_token()
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()["error"] == "invalid_client"
    admin.set_faults(auth="ok")
    assert api.get("WhoAmI").status_code == 200


def google_credentials(sandbox: SandboxServer) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(
        str(sandbox.fcm_credentials_path), scopes=[FCM_SCOPE]
    )


def test_google_auth_refreshes_and_fcm_send_is_recorded(
    sandbox: SandboxServer, session: requests.Session, http: httpx.Client, admin: AdminClient
) -> None:
    """google-auth's service-account refresh works against the sandbox and a send is recorded."""
    credentials = google_credentials(sandbox)
    credentials.refresh(google.auth.transport.requests.Request(session))
    assert credentials.valid
    response = http.post(
        f"{sandbox.url}/v1/projects/{sandbox.fcm_project_id}/messages:send",
        headers={"authorization": f"Bearer {credentials.token}"},
        json={"message": {"token": "device-1", "data": {"type": "hlf_sync_failure"}}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"].startswith(f"projects/{sandbox.fcm_project_id}/messages/")
    (message,) = admin.fcm_messages()
    assert message["token"] == "device-1"
    assert message["data"] == {"type": "hlf_sync_failure"}
    assert admin.stats()["token_requests"] == {"google": 1}


def test_assertion_signed_by_another_key_is_refused(
    sandbox: SandboxServer, http: httpx.Client
) -> None:
    """A JWT-bearer assertion not signed by the sandbox's service-account key is refused."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    info = json.loads(sandbox.fcm_credentials_path.read_text())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": info["client_email"],
            "aud": info["token_uri"],
            "scope": FCM_SCOPE,
            "iat": now,
            "exp": now + 600,
        },
        other_key,
        algorithm="RS256",
        headers={"kid": info["private_key_id"]},
    )
    response = http.post(
        info["token_uri"],
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


def test_entra_token_does_not_open_fcm(
    sandbox: SandboxServer, http: httpx.Client, token: str
) -> None:
    """A Dataverse token is not a Google token: FCM refuses it with 401 UNAUTHENTICATED."""
    response = http.post(
        f"{sandbox.url}/v1/projects/{sandbox.fcm_project_id}/messages:send",
        headers={"authorization": f"Bearer {token}"},
        json={"message": {"token": "device-1"}},
    )
    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
