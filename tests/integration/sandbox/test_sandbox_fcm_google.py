"""FCM and Google's token endpoint answer as Google documents them (issue 17)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import google.auth.transport.requests
import httpx
import pytest
import requests
from google.oauth2 import service_account

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer


@pytest.fixture
def fcm(
    sandbox: SandboxServer, session: requests.Session, ca: ssl.SSLContext
) -> Iterator[httpx.Client]:
    """An FCM client holding a real google-auth token from the sandbox."""
    credentials = service_account.Credentials.from_service_account_file(
        str(sandbox.fcm_credentials_path),
        scopes=["https://www.googleapis.com/auth/firebase.messaging"],
    )
    credentials.refresh(google.auth.transport.requests.Request(session))
    with httpx.Client(
        base_url=f"{sandbox.url}/v1/projects/{sandbox.fcm_project_id}",
        headers={"authorization": f"Bearer {credentials.token}"},
        verify=ca,
    ) as client:
        yield client


def send(fcm: httpx.Client, message: dict[str, Any]) -> httpx.Response:
    return fcm.post("/messages:send", json={"message": message})


def test_a_wrong_project_is_plain_permission_denied(
    fcm: httpx.Client, sandbox: SandboxServer
) -> None:
    """Another project answers 403 PERMISSION_DENIED with no FcmError (not SENDER_ID_MISMATCH)."""
    response = fcm.post(
        f"{sandbox.url}/v1/projects/other/messages:send", json={"message": {"token": "t"}}
    )
    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (403, "PERMISSION_DENIED")
    assert "details" not in error


def test_a_malformed_device_token_is_refused_naming_the_field(fcm: httpx.Client) -> None:
    """A token FCM could never have issued is 400 INVALID_ARGUMENT about message.token."""
    response = send(fcm, {"token": "not a token!", "data": {"k": "v"}})
    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"] == "The registration token is not a valid FCM registration token"
    violations = [d for d in error["details"] if "fieldViolations" in d]
    assert violations[0]["fieldViolations"][0]["field"] == "message.token"
    assert send(fcm, {"token": "abc:APA91b-_x", "data": {"collapse_key": "k"}}).status_code == 200


def test_an_expired_token_is_plain_unauthenticated(fcm: httpx.Client, admin: AdminClient) -> None:
    """An expired OAuth token is 401 UNAUTHENTICATED without an FcmError code."""
    admin.expire_tokens("google")
    response = send(fcm, {"token": "t"})
    error = response.json()["error"]
    assert (response.status_code, error["status"]) == (401, "UNAUTHENTICATED")
    assert "details" not in error


def test_injected_401_and_403_carry_no_fcm_code(fcm: httpx.Client, admin: AdminClient) -> None:
    """Injected 401/403 are Google's plain errors; THIRD_PARTY_AUTH_ERROR needs a rule body."""
    admin.set_faults([{"kind": "fcm", "status": 401, "times": 1},
                      {"kind": "fcm", "status": 403, "times": 1}])  # fmt: skip
    for status, grpc in ((401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")):
        error = send(fcm, {"token": "t"}).json()["error"]
        assert (error["code"], error["status"]) == (status, grpc)
        assert "details" not in error


def test_429_with_and_without_an_fcm_code(fcm: httpx.Client, admin: AdminClient) -> None:
    """A 429 rule answers QUOTA_EXCEEDED; a rule body gives Google's plain RESOURCE_EXHAUSTED."""
    plain = '{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}'
    admin.set_faults([{"kind": "fcm", "status": 429, "times": 1},
                      {"kind": "fcm", "status": 429, "times": 1, "body": plain}])  # fmt: skip
    first, second = send(fcm, {"token": "t"}).json(), send(fcm, {"token": "t"}).json()
    assert first["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    assert second["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "details" not in second["error"]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, "invalid_grant"), (401, "invalid_client"), (500, "internal_failure")],
)
def test_google_token_faults_are_google_shaped(
    http: httpx.Client, sandbox: SandboxServer, admin: AdminClient, status: int, error: str
) -> None:
    """Faults at Google's token endpoint answer {"error", "error_description"}, no AADSTS."""
    admin.set_faults([{"kind": "token", "path": "/token", "status": status}])
    response = http.post(f"{sandbox.url}/token", data={"grant_type": "x"})
    body = response.json()
    assert (response.status_code, body["error"]) == (status, error)
    assert set(body) == {"error", "error_description"}


def test_google_token_502_is_an_html_page(
    http: httpx.Client, sandbox: SandboxServer, admin: AdminClient
) -> None:
    """A 502 from Google's front end is a page, as the real one is."""
    admin.set_faults([{"kind": "token", "path": "/token", "status": 502}])
    response = http.post(f"{sandbox.url}/token", data={"grant_type": "x"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")


def test_entra_token_faults_keep_microsofts_shape(
    http: httpx.Client, sandbox: SandboxServer, admin: AdminClient
) -> None:
    """The Entra token endpoint still answers faults with AADSTS codes."""
    admin.set_faults([{"kind": "token", "status": 401}])
    response = http.post(f"{sandbox.authority}/oauth2/v2.0/token", data={"grant_type": "x"})
    assert response.status_code == 401
    assert "error_codes" in response.json()
