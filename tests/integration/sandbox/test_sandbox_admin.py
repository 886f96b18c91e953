"""The admin API and the server plumbing: logs, stats, reset, env, and the CLI entry point."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from hlfsync_sandbox.client import AdminClient
from hlfsync_sandbox.server import SandboxServer

EXPECTED_ENV = {
    "HLFSYNC_DYNAMICS_URL",
    "HLFSYNC_DYNAMICS_TENANT_ID",
    "HLFSYNC_DYNAMICS_CLIENT_ID",
    "HLFSYNC_DYNAMICS_CLIENT_SECRET",
    "HLFSYNC_DYNAMICS_AUTHORITY",
    "HLFSYNC_DYNAMICS_CA_BUNDLE",
    "HLFSYNC_DYNAMICS_WEBHOOK_SECRET",
    "HLFSYNC_FCM_PROJECT_ID",
    "HLFSYNC_FCM_CREDENTIALS",
    "HLFSYNC_FCM_ENDPOINT",
}


def test_contacts_round_trip_with_extra_attributes(admin: AdminClient) -> None:
    """POST /_sandbox/contacts creates or replaces contacts and GET returns them with extras."""
    cid = uuid.uuid4()
    assert admin.put_contacts([{"contactid": cid, "listed": False, "fullname": "Kari"}]) == 1
    (row,) = admin.contacts()
    assert (row["contactid"], row["listed"], row.get("fullname")) == (str(cid), False, "Kari")
    admin.put_contacts([{"contactid": cid, "listed": True}])
    assert admin.contacts()[0]["listed"] is True


def test_bad_contacts_are_422(admin: AdminClient) -> None:
    """A contact without a UUID or a boolean listed is refused with 422."""
    with pytest.raises(httpx.HTTPStatusError) as refused:
        admin.put_contacts([{"contactid": "x", "listed": True}])
    assert refused.value.response.status_code == 422


def test_request_log_since_and_correlation(api: httpx.Client, admin: AdminClient) -> None:
    """The log carries the correlation header, filters by ?since= and clears on DELETE."""
    api.get("WhoAmI")
    cutoff = time.time()
    api.get("WhoAmI", headers={"x-ms-client-request-id": "attempt-7"})
    (entry,) = admin.requests(since=cutoff)
    assert entry["correlation_id"] == "attempt-7"
    assert entry["at"] >= cutoff
    assert (entry["method"], entry["path"], entry["status"]) == (
        "GET",
        "/api/data/v9.2/WhoAmI",
        200,
    )
    admin.clear_requests()
    assert admin.requests() == []


def test_stats_count_by_kind_and_status(api: httpx.Client, admin: AdminClient) -> None:
    """GET /_sandbox/stats counts requests by kind and status, and token requests by service."""
    api.get("WhoAmI")
    api.patch(
        f"contacts({uuid.uuid4()})", json={"hlf_listedonwebsite": True}, headers={"If-Match": "*"}
    )
    stats = admin.stats()
    assert stats["requests"]["dataverse"] == {"200": 1, "404": 1}
    assert stats["token_requests"] == {"entra": 1}


def test_reset_forgets_everything(api: httpx.Client, admin: AdminClient) -> None:
    """POST /_sandbox/reset clears contacts, logs, faults and restores credentials."""
    admin.put_contacts([{"contactid": uuid.uuid4(), "listed": True}])
    admin.set_faults([{"status": 500}])
    admin.reset()
    assert admin.contacts() == []
    assert admin.requests() == []
    assert admin.faults()["rules"] == []
    assert api.get("WhoAmI").status_code == 200  # tokens under the initial secret survive


def test_env_points_hlfsync_at_the_sandbox(sandbox: SandboxServer) -> None:
    """env() names every setting hlfsync needs, and the files it names exist."""
    env = sandbox.env()
    assert set(env) >= EXPECTED_ENV
    assert env["HLFSYNC_DYNAMICS_AUTHORITY"] == f"{sandbox.url}/{sandbox.tenant_id}"
    assert env["HLFSYNC_FCM_ENDPOINT"] == sandbox.url
    assert Path(env["HLFSYNC_DYNAMICS_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE")
    assert Path(env["HLFSYNC_FCM_CREDENTIALS"]).stat().st_mode & 0o077 == 0
    assert sandbox.env("webhook-v1")["HLFSYNC_DYNAMICS_URL"] == f"{sandbox.url}/webhook"


def test_serve_writes_the_env_file_and_answers(tmp_path: Path) -> None:
    """serve() (the `hlfsync sandbox` command) listens, writes the env file and stops on SIGINT."""
    env_file = tmp_path / "sandbox.env"
    code = (
        "from pathlib import Path; from hlfsync_sandbox.server import serve; "
        f"serve('127.0.0.1', 0, Path({str(env_file)!r}), Path({str(tmp_path / 'data')!r}))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("hlfsync sandbox listening on https://127.0.0.1:"), line
        env = dict(row.split("=", 1) for row in env_file.read_text().splitlines() if "=" in row)
        assert set(env) >= EXPECTED_ENV
        assert env_file.stat().st_mode & 0o077 == 0
        with AdminClient(
            env["HLFSYNC_DYNAMICS_URL"], verify=env["HLFSYNC_DYNAMICS_CA_BUNDLE"]
        ) as admin:
            assert admin.contacts() == []
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_stop_releases_hanging_requests(tmp_path: Path) -> None:
    """Stopping a server drops requests hung by a timeout fault instead of waiting for them."""
    errors: list[Exception] = []
    with SandboxServer(tmp_path) as server:
        context = ssl.create_default_context(cafile=str(server.ca_path))
        server.admin().set_faults([{"kind": "discovery", "status": "timeout"}])

        def call() -> None:
            try:
                httpx.get(
                    f"{server.authority}/v2.0/.well-known/openid-configuration", verify=context
                )
            except httpx.HTTPError as exc:
                errors.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.3)  # let the request arrive and start hanging
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    caller.join(timeout=5)
    assert stopped_in < 2.0
    assert len(errors) == 1
    assert isinstance(errors[0], httpx.RemoteProtocolError)
