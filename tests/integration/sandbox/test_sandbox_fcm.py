"""FCM HTTP v1 emulation: validation, unregistered tokens, and faults aimed at FCM."""

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

UNREGISTERED = {
    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
    "errorCode": "UNREGISTERED",
}


@pytest.fixture
def fcm(
    sandbox: SandboxServer, session: requests.Session, ca: ssl.SSLContext
) -> Iterator[httpx.Client]:
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
    # A leading slash: httpx would read "messages:send" alone as a URL with scheme "messages".
    return fcm.post("/messages:send", json={"message": message})


def test_non_string_data_is_invalid_argument(fcm: httpx.Client, admin: AdminClient) -> None:
    """A data value that is not a string answers 400 INVALID_ARGUMENT and nothing is recorded."""
    response = send(fcm, {"token": "t", "data": {"attempt": 3}})
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert admin.fcm_messages() == []


def test_unknown_message_field_is_invalid_argument(fcm: httpx.Client) -> None:
    """An unknown field in the message answers 400 INVALID_ARGUMENT, as FCM's strict parser does."""
    response = send(fcm, {"token": "t", "dataa": {}})
    assert response.status_code == 400


def test_unregistered_token_is_404_with_fcm_error(fcm: httpx.Client, admin: AdminClient) -> None:
    """A token declared unregistered answers 404 with the FcmError UNREGISTERED detail."""
    admin.unregister_tokens(["gone"])
    response = send(fcm, {"token": "gone", "data": {"k": "v"}})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["status"] == "NOT_FOUND"
    assert error["details"] == [UNREGISTERED]
    assert send(fcm, {"token": "still-here"}).status_code == 200


def test_other_project_is_refused(fcm: httpx.Client, sandbox: SandboxServer) -> None:
    """Sending to another project's endpoint answers 403 PERMISSION_DENIED."""
    response = fcm.post(f"{sandbox.url}/v1/projects/other/messages:send", json={"message": {}})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("status", "grpc_status"),
    [(503, "UNAVAILABLE"), (500, "INTERNAL"), (429, "RESOURCE_EXHAUSTED")],
)
def test_faults_aimed_at_fcm(
    fcm: httpx.Client, admin: AdminClient, status: int, grpc_status: str
) -> None:
    """A rule with kind=fcm answers FCM's own error shape, with Retry-After when asked."""
    admin.set_faults([{"kind": "fcm", "status": status, "times": 1, "retry_after": 7}])
    response = send(fcm, {"token": "t"})
    assert response.status_code == status
    assert response.json()["error"]["status"] == grpc_status
    assert response.headers["Retry-After"] == "7"
    assert send(fcm, {"token": "t"}).status_code == 200


def test_fcm_auth_reject(fcm: httpx.Client, admin: AdminClient) -> None:
    """fcm_auth=reject refuses existing Google tokens with 401, leaving Dataverse alone."""
    admin.set_faults(fcm_auth="reject")
    assert send(fcm, {"token": "t"}).status_code == 401
