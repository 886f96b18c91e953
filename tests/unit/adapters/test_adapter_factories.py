"""build_client and build_notifier: the right adapter, sized HTTP, one-line ConfigErrors."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from hlfsync.core.errors import ConfigError
from hlfsync.dataverse.client import DataverseClient
from hlfsync.dynamics import factory
from hlfsync.dynamics.webhook import WebhookClient
from hlfsync.notify.factory import build_notifier
from hlfsync.notify.fcm import FcmNotifier
from hlfsync.notify.log import LogNotifier
from hlfsync.outbound import tls, transport
from hlfsync.settings import Settings

DATAVERSE: dict[str, Any] = {
    "dynamics_url": "https://hlf.crm4.dynamics.com",
    "dynamics_client_id": "client-1",
    "dynamics_client_secret": "s3cret-VALUE",
    "dynamics_tenant_id": "tenant-1",
}


def settings(**values: Any) -> Settings:
    return Settings(**values)


def test_dataverse_is_the_default_contract() -> None:
    """With full credentials, the default contract builds a DataverseClient."""
    client = factory.build_client(settings(**DATAVERSE))
    assert isinstance(client, DataverseClient)
    assert client.contract == "dataverse-v9"


def test_webhook_contract_builds_a_webhook_client() -> None:
    """webhook-v1 with a URL and a secret builds a WebhookClient."""
    client = factory.build_client(
        settings(
            dynamics_contract="webhook-v1",
            dynamics_url="https://portal.example/hook",
            dynamics_webhook_secret="whsec",
        )
    )
    assert isinstance(client, WebhookClient)


@pytest.mark.parametrize(
    ("missing", "variable"),
    [
        ("dynamics_url", "HLFSYNC_DYNAMICS_URL"),
        ("dynamics_client_id", "HLFSYNC_DYNAMICS_CLIENT_ID"),
        ("dynamics_client_secret", "HLFSYNC_DYNAMICS_CLIENT_SECRET"),
        ("dynamics_tenant_id", "HLFSYNC_DYNAMICS_TENANT_ID"),
    ],
)
def test_missing_dataverse_settings_name_the_variable(missing: str, variable: str) -> None:
    """Each missing dataverse-v9 setting stops the build with one line naming its variable."""
    values = {k: v for k, v in DATAVERSE.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        factory.build_client(settings(**values))
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message
    assert "s3cret-VALUE" not in message


def test_an_explicit_authority_replaces_the_tenant() -> None:
    """HLFSYNC_DYNAMICS_AUTHORITY alone is enough (the sandbox's local authority)."""
    values = {k: v for k, v in DATAVERSE.items() if k != "dynamics_tenant_id"}
    client = factory.build_client(
        settings(**values, dynamics_authority="https://127.0.0.1:8443/t1")
    )
    assert isinstance(client, DataverseClient)


@pytest.mark.parametrize("authority", ["http://127.0.0.1:8443/t1", "https://127.0.0.1:8443"])
def test_an_authority_msal_cannot_use_is_refused(authority: str) -> None:
    """msal needs https and a tenant segment; anything else is named at start."""
    with pytest.raises(ConfigError, match="HLFSYNC_DYNAMICS_AUTHORITY"):
        factory.build_client(settings(**DATAVERSE, dynamics_authority=authority))


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"dynamics_webhook_secret": "x"}, "HLFSYNC_DYNAMICS_URL"),
        ({"dynamics_url": "https://portal.example/hook"}, "HLFSYNC_DYNAMICS_WEBHOOK_SECRET"),
    ],
)
def test_missing_webhook_settings_name_the_variable(values: dict[str, str], variable: str) -> None:
    """webhook-v1 without a URL or a secret stops with one line naming the variable."""
    with pytest.raises(ConfigError, match=variable):
        factory.build_client(settings(dynamics_contract="webhook-v1", **values))


def test_a_bad_ca_bundle_is_named(tmp_path: Path) -> None:
    """A CA bundle that is missing or not PEM stops the build naming HLFSYNC_DYNAMICS_CA_BUNDLE."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    for path in (tmp_path / "missing.pem", garbage):
        with pytest.raises(ConfigError, match="HLFSYNC_DYNAMICS_CA_BUNDLE"):
            factory.build_client(settings(**DATAVERSE, dynamics_ca_bundle=path))


def test_a_ca_bundle_becomes_an_ssl_context(tmp_path: Path) -> None:
    """A valid CA bundle is loaded into an SSLContext trusting that CA."""
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    context = tls.tls_verify(path)
    assert isinstance(context, ssl.SSLContext)
    assert context.cert_store_stats()["x509_ca"] == 1
    assert tls.tls_verify(None) is True


def test_http_client_is_sized_for_the_workers() -> None:
    """Connections follow worker_concurrency; the timeout dynamics_timeout."""
    http = factory.build_http(settings(worker_concurrency=40, dynamics_timeout=7.0))
    assert isinstance(http._transport, transport.PooledTransport)
    assert http._transport._limit == 40 + factory.SPARE_CONNECTIONS
    assert http.timeout.read == 7.0
    assert http.timeout.connect == 7.0
    assert not http.follow_redirects


def test_notifier_is_log_only_without_fcm() -> None:
    """Without HLFSYNC_FCM_* the notifier stores and logs only."""
    assert isinstance(build_notifier(settings()), LogNotifier)


def test_notifier_is_fcm_when_configured(tmp_path: Path) -> None:
    """With a project and a credentials file, the notifier is FcmNotifier."""
    key = tmp_path / "sa.json"
    key.write_text("{}")
    notifier = build_notifier(settings(fcm_project_id="hlf-app", fcm_credentials=key))
    assert isinstance(notifier, FcmNotifier)
    # Pushes go over the pooled transport too (httpx's own cost milliseconds of CPU per push).
    assert isinstance(notifier._http._transport, transport.PooledTransport)


def test_a_missing_fcm_credentials_file_is_named(tmp_path: Path) -> None:
    """A credentials path that is not a file stops the build naming HLFSYNC_FCM_CREDENTIALS."""
    with pytest.raises(ConfigError, match="HLFSYNC_FCM_CREDENTIALS"):
        build_notifier(settings(fcm_project_id="p", fcm_credentials=tmp_path / "nope.json"))
