"""One sandbox per test session, reset before every test; clients that trust its CA."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest
import requests

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture(autouse=True)
def admin(sandbox: SandboxServer) -> AdminClient:
    client = sandbox.admin()
    client.reset()
    return client


@pytest.fixture
def ca(sandbox: SandboxServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sandbox.ca_path))


@pytest.fixture
def http(ca: ssl.SSLContext) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ca, timeout=10.0) as client:
        yield client


@pytest.fixture
def new_token(sandbox: SandboxServer, http: httpx.Client) -> Callable[..., str]:
    """Fetch an Entra token with the client credentials (or the `secret` given)."""

    def fetch(secret: str | None = None) -> str:
        return fetch_token(sandbox, http, secret)

    return fetch


@pytest.fixture
def token(new_token: Callable[..., str]) -> str:
    return new_token()


@pytest.fixture
def api(sandbox: SandboxServer, ca: ssl.SSLContext, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{sandbox.url}/api/data/v9.2/",
        verify=ca,
        headers={"authorization": f"Bearer {token}"},
        timeout=10.0,
    ) as client:
        yield client


@pytest.fixture
def session(sandbox: SandboxServer) -> Iterator[requests.Session]:
    # trust_env=False: requests lets REQUESTS_CA_BUNDLE override session.verify otherwise.
    with requests.Session() as client:
        client.verify = str(sandbox.ca_path)
        client.trust_env = False
        yield client


def fetch_token(sandbox: SandboxServer, http: httpx.Client, secret: str | None = None) -> str:
    response = http.post(
        f"{sandbox.authority}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": secret or sandbox.client_secret,
            "scope": f"{sandbox.url}/.default",
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])
