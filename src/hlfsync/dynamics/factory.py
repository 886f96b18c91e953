"""Builds the configured `DynamicsClient` (`HLFSYNC_DYNAMICS_CONTRACT`) and its HTTP client.

Owns the checks that stop a bad Dynamics configuration at start with one line naming the
`HLFSYNC_*` variable. Makes no network call: the token authority is first contacted on first use.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from hlfsync.core.errors import ConfigError
from hlfsync.dataverse.auth import TokenProvider
from hlfsync.dataverse.client import DataverseClient
from hlfsync.dynamics.port import DynamicsClient
from hlfsync.dynamics.webhook import WebhookClient
from hlfsync.outbound.tls import tls_verify
from hlfsync.outbound.transport import PooledTransport
from hlfsync.settings import PREFIX, Settings

# Room beyond the workers' own calls for a health check and a reconciliation page at once.
SPARE_CONNECTIONS = 4
KEEPALIVE_EXPIRY_S = 30.0


def _missing(name: str, why: str) -> ConfigError:
    return ConfigError(f"missing setting {PREFIX}{name}: {why}")


def build_http(settings: Settings) -> httpx.AsyncClient:
    """An HTTP/1.1 keep-alive client sized for the workers, with the Dynamics timeout and CA."""
    connections = settings.worker_concurrency + SPARE_CONNECTIONS
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.dynamics_timeout),
        transport=PooledTransport(
            connections=connections,
            verify=tls_verify(settings.dynamics_ca_bundle),
            keepalive_expiry_s=KEEPALIVE_EXPIRY_S,
        ),
        follow_redirects=False,
        headers={"User-Agent": "hlfsync"},
    )


def _check_authority(authority: str) -> None:
    parts = urlsplit(authority)
    if parts.scheme != "https" or not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(
            f"invalid setting {PREFIX}DYNAMICS_AUTHORITY: must be https://host/<tenant>, "
            f"got {authority!r}"
        )


def build_tokens(settings: Settings) -> TokenProvider:
    """The msal token source for dataverse-v9, after checking every credential setting."""
    if not settings.dynamics_url:
        raise _missing("DYNAMICS_URL", "dataverse-v9 needs the organisation URL")
    if not settings.dynamics_client_id:
        raise _missing("DYNAMICS_CLIENT_ID", "dataverse-v9 needs the app registration's id")
    secret = settings.dynamics_client_secret
    if secret is None or not secret.get_secret_value():
        raise _missing("DYNAMICS_CLIENT_SECRET", "dataverse-v9 needs the client secret")
    authority = settings.authority()
    if authority is None:
        raise _missing(
            "DYNAMICS_TENANT_ID", f"or {PREFIX}DYNAMICS_AUTHORITY; dataverse-v9 needs one"
        )
    _check_authority(authority)
    if settings.dynamics_ca_bundle is not None:
        tls_verify(settings.dynamics_ca_bundle)  # fail now, not on the first token request
    return TokenProvider(
        client_id=settings.dynamics_client_id,
        client_secret=secret.get_secret_value(),
        authority=authority,
        resource=settings.dynamics_url,
        ca_bundle=settings.dynamics_ca_bundle,
        timeout_s=settings.dynamics_timeout,
    )


def build_client(settings: Settings) -> DynamicsClient:
    """The adapter `settings.dynamics_contract` names, ready to use; ConfigError if it cannot be."""
    url = settings.dynamics_url
    if settings.dynamics_contract == "webhook-v1":
        if not url:
            raise _missing("DYNAMICS_URL", "webhook-v1 needs the webhook URL")
        secret = settings.dynamics_webhook_secret
        if secret is None or not secret.get_secret_value():
            raise _missing("DYNAMICS_WEBHOOK_SECRET", "webhook-v1 signs every event with it")
        return WebhookClient(
            build_http(settings),
            url,
            secret.get_secret_value(),
            timeout_s=settings.dynamics_timeout,
        )
    if not url:
        raise _missing("DYNAMICS_URL", "dataverse-v9 needs the organisation URL")
    tokens = build_tokens(settings)
    return DataverseClient(
        build_http(settings),
        tokens,
        url,
        entity_set=settings.dynamics_entity_set,
        listing_field=settings.dynamics_listing_field,
        batch_size=settings.dynamics_batch_size,
        timeout_s=settings.dynamics_timeout,
        alternate_key=settings.dynamics_alternate_key,
    )
